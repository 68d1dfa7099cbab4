-- The study population: persons who pass every inclusion step, one row each. The builder adds one BOOLEAN column
-- (present at index) and one <phenotype>_first_date column per recorded phenotype from cohort.person_variables.
SELECT $study_id AS study_id,
       person_id,
       index_date,
       age_at_index,
       sex,
       observation_start,
       observation_end,
       death_date,
       time_at_risk_start,
       followup_end,
       followup_days,
       outcome_flag,
       outcome_date,
       treatment,
       o.on_treatment_end
FROM eligibility
LEFT JOIN on_treatment_end AS o USING (person_id)
WHERE exclusion_reason IS NULL
