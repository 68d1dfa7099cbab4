"""What a well-formed code looks like in each vocabulary, and the check digits that catch typos.

Codes in phenotype files are written exactly as the ingest normalises them in staging (see
pipelines/extract_spec.py): ICD-10-CM and ICD-9-CM upper-case with the dot after the third character (the fourth for
ICD-9-CM E codes), ATC and LOINC upper-case,
SNOMED CT and RxNorm as plain digits. A code that would never equal a normalised staging code is an error, because
it would silently match nothing.
"""

from __future__ import annotations

import re

import simple_icd_10_cm

from pipelines.extract_spec import VOCABULARIES

# Which vocabularies the staging table of each domain holds (the column descriptions in extract_spec.py).
VOCABULARIES_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    "condition": ("ICD10CM", "ICD9CM", "SNOMED"),
    "drug": ("RxNorm", "ATC"),
    "measurement": ("LOINC", "SNOMED", "LOCAL"),
}

# Prefix matching only makes sense in hierarchical code systems whose hierarchy is spelt in the code itself.
VOCABULARIES_WITH_PREFIXES: tuple[str, ...] = ("ICD10CM", "ICD9CM", "ATC")

# ICD-10-CM: a letter, a digit, a digit or letter (the category), then optionally a dot and 1-4 characters.
_ICD10CM = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
# ICD-9-CM diagnoses: three digits (or V and two digits) with up to two more after the dot, or E, three digits and
# one more after the dot (external causes).
ICD9CM_FORMAT = r"^(([0-9]{3}|V[0-9]{2})(\.[0-9]{1,2})?|E[0-9]{3}(\.[0-9])?)$"
_ICD9CM = re.compile(ICD9CM_FORMAT)
# SNOMED CT identifiers: 6 to 18 digits, no leading zero, the last digit a Verhoeff check digit.
_SNOMED = re.compile(r"^[1-9][0-9]{5,17}$")
# RxNorm concept unique identifiers: plain positive integers.
_RXNORM = re.compile(r"^[1-9][0-9]{0,8}$")
# LOINC: the number (up to 6 digits; LOINC passed 99999 in 2022), a dash and a mod-10 check digit.
_LOINC = re.compile(r"^([0-9]{1,6})-([0-9])$")
# ATC, one pattern per level: anatomical main group, therapeutic subgroup, pharmacological subgroup, chemical
# subgroup, chemical substance (for example C, C03, C03A, C03AA, C03AA03). The 14 main groups are fixed.
_ATC_MAIN_GROUPS = "ABCDGHJLMNPRSV"
_ATC_LEVELS: tuple[re.Pattern[str], ...] = (
    re.compile(rf"^[{_ATC_MAIN_GROUPS}]$"),
    re.compile(rf"^[{_ATC_MAIN_GROUPS}][0-9]{{2}}$"),
    re.compile(rf"^[{_ATC_MAIN_GROUPS}][0-9]{{2}}[A-Z]$"),
    re.compile(rf"^[{_ATC_MAIN_GROUPS}][0-9]{{2}}[A-Z]{{2}}$"),
    re.compile(rf"^[{_ATC_MAIN_GROUPS}][0-9]{{2}}[A-Z]{{2}}[0-9]{{2}}$"),
)
_CPT4 = re.compile(r"^[0-9]{4}[0-9A-Z]$")
_ICD10PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
_LOCAL = re.compile(r"^\S(.*\S)?$")


# Verhoeff's dihedral-group tables (Verhoeff 1969), as used by SNOMED CT for the check digit of every identifier.
_VERHOEFF_MULTIPLY = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_PERMUTE = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_is_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is the Verhoeff check digit of the digits before it."""
    check = 0
    for position, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_MULTIPLY[check][_VERHOEFF_PERMUTE[position % 8][int(digit)]]
    return check == 0


def loinc_check_digit(number: str) -> int:
    """The LOINC mod-10 check digit of the part before the dash (the Luhn scheme the LOINC manual describes).

    Counting from the right, every other digit starting with the rightmost is doubled and its digits summed; the
    check digit brings the total up to the next multiple of ten. Example: 2951 -> 2+5+9+2 = 18 -> 2, so 2951-2.
    """
    total = 0
    for position, character in enumerate(reversed(number)):
        digit = int(character)
        if position % 2 == 0:
            digit *= 2
            digit = digit // 10 + digit % 10
        total += digit
    return (10 - total % 10) % 10


def atc_level(code: str) -> int | None:
    """The ATC level (1-5) of a well-formed ATC code, else None."""
    for level, pattern in enumerate(_ATC_LEVELS, start=1):
        if pattern.match(code):
            return level
    return None


def code_problem(vocabulary: str, code: str, match: str) -> str | None:
    """Why ``code`` is not a usable ``match`` ('exact' or 'prefix') code of ``vocabulary``; None when it is fine.

    ``vocabulary`` must already be a known vocabulary (a key of extract_spec.VOCABULARIES).
    """
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}")
    if match == "prefix" and vocabulary not in VOCABULARIES_WITH_PREFIXES:
        return f"{vocabulary} codes can only be matched exactly (prefixes work for {', '.join(VOCABULARIES_WITH_PREFIXES)})"

    if vocabulary == "ICD10CM":
        return _icd10cm_problem(code)
    if vocabulary == "ICD9CM":
        if not _ICD9CM.match(code):
            return (f"malformed ICD-9-CM code {code!r}: expected e.g. 729.82, 443.9, V12.51 or E880.1 "
                    "(with the dot, as staging writes it)")
        return None
    if vocabulary == "SNOMED":
        if not _SNOMED.match(code):
            return f"malformed SNOMED CT id {code!r}: expected 6-18 digits without a leading zero"
        if not verhoeff_is_valid(code):
            return f"SNOMED CT id {code!r} fails its Verhoeff check digit (a typo?)"
        return None
    if vocabulary == "RxNorm":
        if not _RXNORM.match(code):
            return f"malformed RxNorm CUI {code!r}: expected digits without a leading zero"
        return None
    if vocabulary == "ATC":
        if atc_level(code) is None:
            return (f"malformed ATC code {code!r}: expected one of the five ATC levels "
                    "(e.g. C, C03, C03A, C03AA, C03AA03), upper-case")
        return None
    if vocabulary == "LOINC":
        parsed = _LOINC.match(code)
        if not parsed:
            return f"malformed LOINC code {code!r}: expected digits, a dash and a check digit (e.g. 2951-2)"
        expected = loinc_check_digit(parsed.group(1))
        if int(parsed.group(2)) != expected:
            return f"LOINC code {code!r} fails its mod-10 check digit (expected {parsed.group(1)}-{expected})"
        return None
    if vocabulary == "CPT4":
        return None if _CPT4.match(code) else f"malformed CPT-4 code {code!r}: expected 5 characters (e.g. 93922)"
    if vocabulary == "ICD10PCS":
        return None if _ICD10PCS.match(code) else f"malformed ICD-10-PCS code {code!r}: expected 7 characters"
    if vocabulary == "LOCAL":
        return None if _LOCAL.match(code) else f"malformed local code {code!r}: empty or surrounded by spaces"
    raise ValueError(f"no format rule for vocabulary {vocabulary!r}")  # a vocabulary added to extract_spec


def _icd10cm_problem(code: str) -> str | None:
    if not _ICD10CM.match(code):
        if re.match(r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}$", code):
            return f"write ICD-10-CM codes with the dot after the third character, as staging does: {code[:3]}.{code[3:]}"
        return f"malformed ICD-10-CM code {code!r}: expected e.g. R25.2, T67.2XXA or G20 (upper-case, with the dot)"
    if not simple_icd_10_cm.is_valid_item(code):
        return f"ICD-10-CM code {code!r} does not exist in the CMS release shipped with simple-icd-10-cm"
    return None
