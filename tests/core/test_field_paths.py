"""The one writer of a problem's place in a study or phenotype file (pipelines/field_paths.py), as both loaders
use it: list positions in brackets, and the tag pydantic adds after a discriminated union's field left out."""

from pipelines.field_paths import field_path


def test_positions_are_bracketed_and_fields_dotted():
    assert field_path(("codes", 0, "codes", 2)) == "codes[0].codes[2]"
    assert field_path((3, "phenotype")) == "[3].phenotype"
    assert field_path(()) == ""


def test_a_union_tag_is_dropped_only_right_after_its_field():
    rule_tags = {"rule": ("min_records", "lowest_value")}
    assert field_path(("rule", "min_records", "min_records"), rule_tags) == "rule.min_records"
    assert field_path(("rule", "lowest_value", "threshold"), rule_tags) == "rule.threshold"
    # The same word elsewhere is a field of the file.
    assert field_path(("codes", 0, "min_records"), rule_tags) == "codes[0].min_records"
    assert field_path(("index", "first_visit", "visit_types", 1), {"index": ("first_visit",)}) == \
        "index.visit_types[1]"
