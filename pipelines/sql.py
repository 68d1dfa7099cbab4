"""Reading the SQL files of sql/: DuckDB's dialect, restricted to what Spark SQL runs with the same result
(tests/core/test_sql_portability.py), one statement or model per file, by stage. The engine layer
(pipelines/engine/) runs them on DuckDB as written or translated on Spark.

    sql/staging/     shaping other extract formats into the canonical tables: one SELECT per source table and
                     format (omop_*.sql, synthea_*.sql), the OMOP concept-code map, and DuckDB helper macros
                     (format_macros.sql); run by pipelines/ingest/formats/
    sql/phenotypes/  the phenotype computation: create_tables.sql, one statement per staging table
                     (condition_records, drug_records, measurement_records) and all records as one view
                     (records), then events, record_exclusions, rule_met, person_summary and the composite
                     steps; load/ holds the inserts of the library into phenotype.* tables; run in order by
                     pipelines/phenotypes/compiler.py
    sql/record_spans.sql  the one rule for records that end before they start (a DuckDB temporary macro): run first
                     by the phenotype and cohort stages
    sql/ages.sql     the one rule for age in completed years on a date (a DuckDB temporary macro): run first by the
                     cohort stage and the Garrison sequence symmetry
    sql/measurement_values.sql  the one rule for reading a recorded measurement value (unit, conversion,
                     plausible range; DuckDB temporary macros): run first by the phenotype and cohort stages
    sql/cohorts/     one model per file (observation_periods_merged, index_*, eligibility, attrition_counts,
                     exposure_eras: the one drug-era rule, on_treatment_end, time_varying_*,
                     person_variables, study_population, cohort_rows, table1_*), materialised in order by
                     pipelines/cohorts/build.py

Where a file needs run-time values it names them as DuckDB prepared-statement parameters ($name), never through
string formatting (on Spark the engine layer binds them as literals). The files spell table names literally (pipelines/tables.py names them for Python).
"""

from __future__ import annotations

from functools import lru_cache

from pipelines.paths import SQL_DIR

# Defines end_not_before_start(start_date, end_date): whether a record with an end date counts at all.
RECORD_SPANS_SQL = "record_spans.sql"
# Defines age_in_years(birth_date, year_of_birth, on_date): completed years, 29 February birthdays on 28 February.
AGES_SQL = "ages.sql"
# Defines recorded_unit, canonical_value and within_plausible_range: how a recorded measurement value is read.
MEASUREMENT_VALUES_SQL = "measurement_values.sql"


@lru_cache(maxsize=None)
def read_sql(relative_path: str) -> str:
    """The text of sql/<relative_path>."""
    return (SQL_DIR / relative_path).read_text()
