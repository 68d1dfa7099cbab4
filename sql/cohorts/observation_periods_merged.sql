-- Observation periods merged per person. Periods that overlap or follow each other without a gap (the next starts
-- on or before the day after the previous ends) become one continuous period, so prior observation and follow-up
-- run across them. Periods that end before they start are ignored (sql/record_spans.sql; the data-quality checks
-- report them).
WITH valid_periods AS (
    SELECT person_id,
           observation_period_start_date AS period_start,
           observation_period_end_date AS period_end
    FROM staging.observation_period
    WHERE end_not_before_start(observation_period_start_date, observation_period_end_date)
),
periods_with_latest_earlier_end AS (
    SELECT *,
           max(period_end) OVER (
               PARTITION BY person_id ORDER BY period_start, period_end
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS latest_earlier_end
    FROM valid_periods
),
periods_numbered AS (
    -- A period starts a new merged period when it begins after every earlier period has ended (with a gap).
    SELECT *,
           sum(CASE WHEN latest_earlier_end IS NULL OR period_start > latest_earlier_end + 1 THEN 1 ELSE 0 END)
               OVER (PARTITION BY person_id ORDER BY period_start, period_end ROWS UNBOUNDED PRECEDING)
               AS merged_period_number
    FROM periods_with_latest_earlier_end
)
SELECT person_id,
       min(period_start) AS period_start,
       max(period_end) AS period_end
FROM periods_numbered
GROUP BY person_id, merged_period_number
