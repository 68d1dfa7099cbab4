-- The one rule for a person's age in completed years on a date (eligibility's age at index, Garrison's age at the
-- drug start). From birth_date when the extract has it, else year(on_date) - year_of_birth. A year is completed on
-- the birthday; a person born on 29 February completes it on 28 February in years without one (the last day of the
-- birth month), which is how DuckDB's date_sub('year', birth_date, on_date) counts. Written with
-- year/month/day/last_day, not date_sub (Spark has no calendar-unit difference), so that every engine counts the same.
--
-- Run first by the cohort stage (pipelines/cohorts/build.py) and the Garrison sequence symmetry
-- (pipelines/statistics/sequence_symmetry.py); on Spark the engine expands the macro into the statements that call it.
CREATE OR REPLACE TEMP MACRO age_in_years(birth_date, year_of_birth, on_date) AS
    CASE WHEN birth_date IS NOT NULL
         THEN year(on_date) - year(birth_date)
              - CASE WHEN month(on_date) < month(birth_date)
                       OR (month(on_date) = month(birth_date) AND day(on_date) < day(birth_date)
                           AND on_date < last_day(on_date))
                     THEN 1 ELSE 0 END
         ELSE year(on_date) - year_of_birth END;
