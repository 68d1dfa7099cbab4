-- Macros the shaping models of non-canonical extracts use (docs/extract_formats.md). DuckDB-specific (temporary
-- macros, regular expressions), so they live here and the models stay plain.

-- A field as trimmed text, NULL when empty. Works for CSV text and for typed Parquet columns alike.
CREATE OR REPLACE TEMP MACRO field_text(value) AS nullif(trim(CAST(value AS VARCHAR)), '');

-- A date or timestamp field as a YYYY-MM-DD string: ISO timestamps ('2019-02-17T05:07:38Z', '2019-02-17 05:07:38')
-- keep their date part as written (Synthea's, in UTC). A typed timestamp with a time zone (Parquet) becomes text in
-- the session's time zone, which the ingest pins to UTC (pipelines/ingest/formats/__init__.py utc_session): its
-- UTC date. Anything else passes unchanged, so the loader rejects it as unparseable_date with the value in the
-- reject record.
CREATE OR REPLACE TEMP MACRO iso_date(value) AS
    CASE WHEN regexp_matches(field_text(value), '^\d{4}-\d{2}-\d{2}([T ].*)?$') THEN left(field_text(value), 10)
         ELSE field_text(value) END;

-- A code as the ingest normalises it (pipelines/ingest/loader.py code_expr): trimmed, upper-case, and ICD-10-CM
-- and ICD-9-CM with the dot after the third character (after the fourth for ICD-9-CM E codes, E880.1).
CREATE OR REPLACE TEMP MACRO bare_code(code) AS upper(replace(trim(code), '.', ''));
CREATE OR REPLACE TEMP MACRO canonical_code(vocabulary, code) AS
    CASE WHEN vocabulary = 'ICD9CM' AND bare_code(code) LIKE 'E%' AND length(bare_code(code)) > 4
         THEN substr(bare_code(code), 1, 4) || '.' || substr(bare_code(code), 5)
         WHEN vocabulary = 'ICD9CM' AND bare_code(code) LIKE 'E%' THEN bare_code(code)
         WHEN vocabulary IN ('ICD10CM', 'ICD9CM') AND length(bare_code(code)) > 3
         THEN substr(bare_code(code), 1, 3) || '.' || substr(bare_code(code), 4)
         WHEN vocabulary IN ('ICD10CM', 'ICD9CM') THEN bare_code(code)
         ELSE upper(trim(code)) END;
