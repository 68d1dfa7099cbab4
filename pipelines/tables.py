"""The names of the tables the pipeline writes, stated once for Python code, and the fixed columns of
cohort.study_population.

Python refers to a table through these constants. The SQL models under sql/ spell the same names literally:
they are plain SQL a reader runs and reads as is, and tests/test_architecture_imports.py holds Python to using
these constants. Descriptions of every table and column live in pipelines/data_dictionary.yaml (published tables)
and pipelines/extract_spec.py (staging tables).
"""

from __future__ import annotations

# ingest (pipelines/ingest/)
INGEST_REJECTS = "ingest.rejects"
INGEST_LOAD_COUNTS = "ingest.load_counts"
INGEST_MANIFEST = "ingest.manifest"
CONCEPT_CODE_MAP = "vocabulary.concept_code_map"

# phenotypes (pipelines/phenotypes/, sql/phenotypes/)
PHENOTYPE_DEFINITIONS = "phenotype.definitions"
PHENOTYPE_EVENTS = "phenotype.events"
PHENOTYPE_PERSON_SUMMARY = "phenotype.person_summary"

# cohorts (pipelines/cohorts/, sql/cohorts/)
COHORT_DEFINITION = "cohort.cohort_definition"
COHORT = "cohort.cohort"
STUDY_VARIABLES = "cohort.study_variables"
PERSON_VARIABLES = "cohort.person_variables"
STUDY_POPULATION = "cohort.study_population"
ATTRITION = "results.attrition"
TABLE1 = "results.table1"
TIME_VARYING_EXPOSURE = "cohort.time_varying_exposure"

# statistics (pipelines/statistics/)
ASSOCIATIONS = "results.associations"
ANALYSIS_COVARIATES = "results.analysis_covariates"
ANALYSIS_ATTRITION = "results.analysis_attrition"
NEGATIVE_CONTROL_ESTIMATES = "results.negative_control_estimates"
OUTCOME_COUNTS = "results.outcome_counts"

# data quality (pipelines/quality/)
CHECK_RESULTS = "dq.check_results"
VALID_ICD10CM_CODES = "dq.valid_icd10cm_codes"

# the network database (pipelines/network/)
SITE_ASSOCIATIONS = "results.site_associations"
POOLED_ASSOCIATIONS = "results.pooled_associations"
NETWORK_SITES = "results.network_sites"

# The fixed columns of cohort.study_population, in order (sql/cohorts/study_population.sql selects them; the
# builder adds a BOOLEAN <phenotype> and a <phenotype>_first_date column per phenotype a study records, which may
# therefore not take one of these names).
STUDY_POPULATION_COLUMNS: tuple[str, ...] = (
    "study_id", "person_id", "index_date", "age_at_index", "sex", "observation_start", "observation_end",
    "death_date", "time_at_risk_start", "followup_end", "followup_days", "outcome_flag", "outcome_date",
    "treatment", "on_treatment_end",
)
