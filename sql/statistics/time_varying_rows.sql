-- The counting-process rows of one time-varying exposure ($exposure) of study $study (cohort.time_varying_exposure):
-- `person` is the person's position in the study population read in person_id order (0 for the first), so the
-- covariates at index join without pulling person ids; exposed and outcome as 0/1.
SELECT p.person, t.start_day, t.stop_day, CAST(t.exposed AS INTEGER) AS exposed,
       CAST(t.outcome AS INTEGER) AS outcome
FROM cohort.time_varying_exposure AS t
JOIN (SELECT person_id, row_number() OVER (ORDER BY person_id) - 1 AS person
      FROM cohort.study_population WHERE study_id = $study) AS p ON p.person_id = t.person_id
WHERE t.study_id = $study AND t.variable = $exposure
ORDER BY p.person, t.start_day
