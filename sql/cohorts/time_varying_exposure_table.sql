-- Counting-process rows of the time-varying exposure analyses (time_varying_exposure.sql): per study, person and
-- exposure, the time at risk split into (start_day, stop_day] rows, days counted from time_at_risk_start.
CREATE TABLE IF NOT EXISTS cohort.time_varying_exposure (
    study_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    variable VARCHAR NOT NULL,        -- the exposure (phenotype id)
    start_day INTEGER NOT NULL,       -- the row holds days start_day .. stop_day - 1 of the time at risk (day 0 =
    stop_day INTEGER NOT NULL,        -- time_at_risk_start); the person's last row ends at followup_days
    exposed BOOLEAN NOT NULL,         -- current use (a drug era + grace) or inside a finding's risk window
    outcome BOOLEAN NOT NULL          -- the first outcome falls on the row's last day
)
