"""The GX + DuckDB workaround (pipelines/quality/gx_duckdb.py): still needed, correct, and scoped.

If test_gx_without_workaround_loses_duckdb_results fails, upstream has fixed fivetran/great_expectations#10738 /
#11579: delete pipelines/quality/gx_duckdb.py and its use in pipelines/quality/runner.py, then this file.
"""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import duckdb  # noqa: E402
import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine  # noqa: E402

from pipelines.quality.gx_duckdb import duckdb_results_buffered  # noqa: E402
from pipelines.quality.runner import dispose_gx_engines  # noqa: E402


def small_table(tmp_path):
    """staging.readings: five rows, two of them without a value."""
    path = tmp_path / "readings.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.readings (reading_id VARCHAR, value DOUBLE)")
    con.execute("INSERT INTO staging.readings VALUES ('r1', 1.0), ('r2', NULL), ('r3', 3.0), ('r4', NULL), ('r5', 5.0)")
    con.close()
    return path


def validate_value_not_null(database):
    """ExpectColumnValuesToNotBeNull on staging.readings through a GX SQL datasource (duckdb-engine)."""
    context = gx.get_context(mode="ephemeral")
    datasource = context.data_sources.add_sql(name="db", connection_string=f"duckdb:///{database}")
    try:
        batch = (datasource.add_table_asset(name="readings", table_name="staging.readings")
                 .add_batch_definition_whole_table("whole_table").get_batch())
        return batch.validate(gxe.ExpectColumnValuesToNotBeNull(column="value"), result_format="SUMMARY")
    finally:
        dispose_gx_engines(datasource)


def test_gx_without_workaround_loses_duckdb_results(tmp_path):
    result = validate_value_not_null(small_table(tmp_path))

    got_the_answer = result.result.get("unexpected_count") == 2
    assert not got_the_answer, (
        "GX now reads DuckDB results without the workaround: upstream fixed fivetran/great_expectations#10738 / "
        "#11579. Delete pipelines/quality/gx_duckdb.py and its use in runner.py."
    )
    # The upstream symptom: the metric query's rows are gone, so GX raises and the expectation has no result.
    assert result.success is False
    assert result.result == {}
    assert "list index out of range" in str(result.exception_info)


def test_gx_with_workaround_counts_exactly(tmp_path):
    with duckdb_results_buffered():
        result = validate_value_not_null(small_table(tmp_path))

    assert result.success is False
    assert result.result["element_count"] == 5
    assert result.result["unexpected_count"] == 2
    assert result.result["unexpected_percent"] == 40.0
    assert result.result["partial_unexpected_list"] == [None, None]


def test_workaround_is_scoped_and_nests():
    original = SqlAlchemyExecutionEngine.execute_query
    with duckdb_results_buffered():
        patched = SqlAlchemyExecutionEngine.execute_query
        assert patched is not original
        with duckdb_results_buffered():
            assert SqlAlchemyExecutionEngine.execute_query is patched
        assert SqlAlchemyExecutionEngine.execute_query is patched  # the outer block is still active
    assert SqlAlchemyExecutionEngine.execute_query is original


def test_gx_leaves_the_database_file_free(tmp_path):
    database = small_table(tmp_path)
    with duckdb_results_buffered():
        validate_value_not_null(database)
    # A connection with another configuration fails while any connection to the same file is open in this process.
    con = duckdb.connect(str(database), config={"preserve_insertion_order": "true", "threads": "1"})
    assert con.execute("SELECT count(*) FROM staging.readings").fetchone()[0] == 5
    con.close()
