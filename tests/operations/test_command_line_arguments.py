"""`legcramp-run`'s arguments are checked as they are read, each wrong value refused with the option, what is wrong
and the value, before anything starts (argparse exits 2)."""

from __future__ import annotations

import pytest

from pipelines.run import main


@pytest.mark.parametrize("value, message", [
    ("{leg_cramps: 1}", "argument --override-json: not valid JSON (Expecting property name enclosed in double quotes, "
                        "character 2): {leg_cramps: 1}"),
    ("[1]", "argument --override-json: must be a JSON object, study id -> study fields, not [1]"),
])
def test_a_wrong_override_json_says_what_is_wrong(tmp_path, capsys, value, message):
    database = tmp_path / "site.duckdb"
    with pytest.raises(SystemExit) as stopped:
        main(["--extract", str(tmp_path), "--db", str(database), "--override-json", value])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {message}")
    assert not database.exists()
