"""The shape of a phenotype file (phenotypes/<domain folder>/<id>.yaml), as pydantic models.

These models check structure only: which fields exist, their types and allowed words. Checks that need more than
one field or more than one file (code formats per vocabulary, ICD-10-CM codes that exist, units that are listed,
references between phenotypes, duplicate ids) live in loader.py, so that each problem can name the exact field.

A phenotype is one of four domains:

- ``condition``: diagnosis codes in staging.condition_occurrence (ICD10CM, SNOMED)
- ``drug``: drug codes in staging.drug_exposure (RxNorm, ATC); the event date is drug_exposure_start_date
- ``measurement``: coded values in staging.measurement (LOINC, SNOMED, LOCAL), with units, a plausible range and a
  threshold
- ``composite``: built from other phenotypes (``rule.type: all_of``)
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

PHENOTYPE_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
# Decimals a value keeps after conversion to the canonical unit, so that binary floating-point noise of a conversion
# cannot move a value across a bound (sql/measurement_values.sql canonical_value rounds recorded values the same way).
CONVERSION_DECIMALS = 6

Domain = Literal["condition", "drug", "measurement", "composite"]


class _Strict(BaseModel):
    # Unknown fields are errors (a misspelt field would otherwise be silently ignored). YAML numbers given where
    # text is expected (an unquoted SNOMED id) are read as text.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class CodeGroup(_Strict):
    """Codes of one vocabulary that share a match type, a source and a verification status."""

    vocabulary: str = Field(description="A key of extract_spec.VOCABULARIES, e.g. ICD10CM.")
    match: Literal["exact", "prefix", "descendants"] = Field(
        description="exact: the staging code equals a listed code. prefix: the staging code starts with a listed code "
                    "(ICD10CM, ICD9CM and ATC only; prefixes are compared with the dot, e.g. I70.2 matches I70.213). "
                    "descendants (SNOMED only, as Circe's includeDescendants): the listed concept or any SNOMED CT "
                    "descendant, from the extract's concept_ancestor, else from "
                    "phenotypes/reference/snomed_descendants.csv.")
    codes: list[str] = Field(min_length=1)
    status: Literal["verified", "verified_weak"] = Field(
        description="verified: read in a named, authoritative source. verified_weak: seen only in secondary or "
                    "unnamed public sources. Unverified (recalled) codes are not allowed in a definition.")
    source: str = Field(min_length=1, description="Where the codes were checked.")
    checked_on: date | None = Field(
        default=None, description="The day the codes were last checked against the source (YYYY-MM-DD).")
    unit: str | None = Field(
        default=None,
        description="Measurement phenotypes only: the unit the code reports (from its LOINC property). A record with "
                    "no unit is read in this unit.")
    note: str | None = None


class UnitConversion(_Strict):
    """How to turn a value recorded in ``unit`` into the canonical unit: canonical value = value x factor."""

    unit: str = Field(min_length=1, description="Unit as recorded; compared case-insensitively, spaces ignored.")
    factor: float = Field(gt=0)
    source: str = Field(min_length=1, description="Where the factor comes from.")


class PlausibleRange(_Strict):
    """Values outside [min, max] are treated as errors and ignored. Both ends are included unless
    ``min_inclusive`` is false: a range open at its lower end, such as an ABI, where any value above 0 is real."""

    min: float
    max: float
    min_inclusive: bool = Field(default=True, description="false: a value equal to min is implausible as well.")
    unit: str | None = Field(default=None, description="Unit of min and max; default: the canonical unit.")

    @model_validator(mode="after")
    def _min_below_max(self) -> PlausibleRange:
        if not self.min < self.max:
            raise ValueError("min must be below max")
        return self


class Threshold(_Strict):
    """The value range that counts: one lower bound (greater_than or at_least) and/or one upper bound (less_than or
    at_most). The field names say whether the bound itself is included."""

    greater_than: float | None = None
    at_least: float | None = None
    less_than: float | None = None
    at_most: float | None = None
    unit: str | None = Field(default=None, description="Unit of the bounds; default: the canonical unit.")

    @model_validator(mode="after")
    def _one_bound_per_side(self) -> Threshold:
        if self.greater_than is not None and self.at_least is not None:
            raise ValueError("give greater_than or at_least, not both")
        if self.less_than is not None and self.at_most is not None:
            raise ValueError("give less_than or at_most, not both")
        if self.lower is None and self.upper is None:
            raise ValueError("give at least one bound (greater_than, at_least, less_than or at_most)")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError("the lower bound must be below the upper bound")
        return self

    @property
    def lower(self) -> float | None:
        return self.greater_than if self.greater_than is not None else self.at_least

    @property
    def upper(self) -> float | None:
        return self.less_than if self.less_than is not None else self.at_most


class Measurement(_Strict):
    """Units, plausibility and threshold of a measurement phenotype. A library phenotype names its `analyte`, a row
    of phenotypes/reference/measurements.yaml, and the loader fills canonical_unit, units and plausible_range from
    it; a definition outside the library may state them itself."""

    analyte: str | None = Field(
        default=None, description="The row of phenotypes/reference/measurements.yaml giving canonical_unit, units and "
                                  "plausible_range (the loader fills them from it).")
    canonical_unit: str = Field(min_length=1, description="Values are converted to this unit before any comparison.")
    units: list[UnitConversion] = Field(min_length=1)
    plausible_range: PlausibleRange
    threshold: Threshold
    def canonical_plausible_range(self) -> tuple[float, float, bool]:
        """(min, max, min_inclusive) in the canonical unit, rounded to 6 decimals as every converted value is."""
        factors = {normalise_unit(u.unit): u.factor for u in self.units}
        plausible = self.plausible_range
        factor = factors[normalise_unit(plausible.unit)] if plausible.unit is not None else 1.0
        return (round(plausible.min * factor, CONVERSION_DECIMALS), round(plausible.max * factor, CONVERSION_DECIMALS),
                plausible.min_inclusive)

    laterality: Literal["per_leg", "not_applicable"] = Field(
        default="not_applicable",
        description="per_leg: values are recorded per side (laterality L/R) and every leg's value counts, so the "
                    "person's lowest value over both legs decides.")


class _PersonExclusions(_Strict):
    exclude_persons_with: list[str] = Field(
        default_factory=list,
        description="Ids of (non-composite) phenotypes: a person with any record of them, at any time, is excluded.")


class MinRecordsRule(_PersonExclusions):
    """At least ``min_records`` qualifying records (for measurements: values meeting the threshold), on as many
    different days: records of one day count once."""

    type: Literal["min_records"]
    min_records: int = Field(default=1, ge=1)
    exclusion_window_days: int | None = Field(
        default=None, ge=0,
        description="With it, exclude_persons_with excludes records, not persons: a record with a record of an "
                    "excluding phenotype within this many days before or after it does not count (a Circe "
                    "correlated criterion), and the rule is judged on the records left "
                    "(sql/phenotypes/record_exclusions.sql).")

    @model_validator(mode="after")
    def _window_needs_exclusions(self) -> MinRecordsRule:
        if self.exclusion_window_days is not None and not self.exclude_persons_with:
            raise ValueError("exclusion_window_days applies to the phenotypes of exclude_persons_with; list them")
        return self


class InpatientOrOutpatientRule(_PersonExclusions):
    """One record in an inpatient visit, or two other records (outpatient, emergency or no visit) at least
    ``min_days_apart`` days apart."""

    type: Literal["one_inpatient_or_two_outpatient"]
    min_days_apart: int = Field(ge=0)


class LowestValueRule(_PersonExclusions):
    """The person's lowest plausible value (over all dates, and both legs for per-leg measurements) meets the
    threshold."""

    type: Literal["lowest_value"]


class AllValuesRule(_PersonExclusions):
    """Every plausible value of the person meets the threshold (so the lowest and the highest both do)."""

    type: Literal["all_values"]


class AllOfRule(_Strict):
    """Composite: the person is in every ``all_of`` phenotype and in none of the ``none_of`` phenotypes."""

    type: Literal["all_of"]
    all_of: list[str] = Field(min_length=1)
    none_of: list[str] = Field(default_factory=list)


Rule = Annotated[
    Union[MinRecordsRule, InpatientOrOutpatientRule, LowestValueRule, AllValuesRule, AllOfRule],
    Field(discriminator="type"),
]
RULE_TYPES: tuple[str, ...] = ("min_records", "one_inpatient_or_two_outpatient", "lowest_value", "all_values",
                               "all_of")

# Which rule types make sense in which domain.
RULE_TYPES_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    "condition": ("min_records", "one_inpatient_or_two_outpatient"),
    "drug": ("min_records",),
    "measurement": ("min_records", "lowest_value", "all_values"),
    "composite": ("all_of",),
}


class Decision(_Strict):
    """A choice made while writing the definition, and why: the record a reviewer needs."""

    decision: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class PhenotypeDefinition(_Strict):
    """One phenotype file."""

    id: str = Field(pattern=PHENOTYPE_ID_PATTERN, description="Also the file name (<id>.yaml) and the asset key.")
    name: str = Field(min_length=1)
    version: int = Field(ge=1, description="Raise it whenever the codes or the rule change.")
    domain: Domain
    description: str = Field(min_length=1)
    seed_section: str = Field(min_length=1, description="The part of the clinical seed this phenotype serves.")
    codes: list[CodeGroup] = Field(default_factory=list)
    exclude_codes: list[CodeGroup] = Field(
        default_factory=list,
        description="Codes that never count for this phenotype even when an included prefix covers them.")
    measurement: Measurement | None = None
    rule: Rule
    decisions: list[Decision] = Field(default_factory=list)
    clinical_doubts: list[str] = Field(
        default_factory=list,
        description="Where the rule, kept as the project specifies it, is clinically questionable.")
    sources: list[str] = Field(min_length=1)
    variant_of: str | None = Field(
        default=None, pattern=PHENOTYPE_ID_PATTERN,
        description="A variant of another phenotype of the same domain (its parent), defined for a sensitivity "
                    "analysis that replaces the parent by it. Its file (VariantDefinition) states only how it "
                    "differs; the loader builds this complete definition from the parent's.")

    @property
    def referenced_phenotypes(self) -> tuple[str, ...]:
        """Ids of the phenotypes this one is computed from (composite parts and person exclusions)."""
        if isinstance(self.rule, AllOfRule):
            return tuple(self.rule.all_of) + tuple(self.rule.none_of)
        return tuple(self.rule.exclude_persons_with)


class CodeRemoval(_Strict):
    """Codes of the parent that a variant does not list: codes of one vocabulary, whatever group lists them."""

    vocabulary: str
    codes: list[str] = Field(min_length=1)


class VariantDefinition(_Strict):
    """A variant phenotype file: the parent's definition (codes, exclusions, rule, measurement, domain, seed section,
    sources) with only the differences stated, so a later change to the parent reaches its variants (one fact in one
    place). The loader builds the complete PhenotypeDefinition: the parent's code groups less `remove_codes`
    (a group left without codes is dropped), then `add_codes`; the same for the excluded codes; `rule` and
    `threshold` replace the parent's; the sources are the parent's, then the variant's own. The variant's decisions
    say what it changes and why (one fact per variant)."""

    id: str = Field(pattern=PHENOTYPE_ID_PATTERN, description="Also the file name (<id>.yaml) and the asset key.")
    variant_of: str = Field(pattern=PHENOTYPE_ID_PATTERN,
                            description="The parent: a phenotype of the library that is not itself a variant.")
    name: str = Field(min_length=1)
    version: int = Field(ge=1, description="Raise it whenever the variant's own differences change.")
    description: str = Field(min_length=1)
    add_codes: list[CodeGroup] = Field(default_factory=list, description="Codes the variant counts besides the "
                                                                         "parent's.")
    remove_codes: list[CodeRemoval] = Field(default_factory=list,
                                            description="Codes of the parent the variant does not count.")
    add_exclude_codes: list[CodeGroup] = Field(default_factory=list)
    remove_exclude_codes: list[CodeRemoval] = Field(
        default_factory=list, description="Excluded codes of the parent the variant does not list (e.g. a code it "
                                          "counts instead).")
    rule: Rule | None = Field(default=None, description="Replaces the parent's rule.")
    threshold: Threshold | None = Field(default=None,
                                        description="Measurement variants: replaces the parent's threshold.")
    decisions: list[Decision] = Field(min_length=1, description="What the variant changes, and why.")
    clinical_doubts: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="Sources of the difference, after the parent's.")

    @property
    def differences(self) -> tuple[str, ...]:
        """The fields that state a difference from the parent."""
        return tuple(name for name in ("add_codes", "remove_codes", "add_exclude_codes", "remove_exclude_codes",
                                       "rule", "threshold") if getattr(self, name))


def normalise_unit(unit: str) -> str:
    """The comparable form of a unit string: trimmed, spaces removed, lower-case ("mmol / L" -> "mmol/l").

    sql/measurement_values.sql (recorded_unit) normalises recorded units the same way; keep the two in step.
    """
    return unit.strip().replace(" ", "").lower()
