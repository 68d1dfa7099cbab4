-- Persons before, removed at and after each inclusion step, in the order of $step_codes. Each person in
-- eligibility carries the code of the first step they fail (NULL = kept), so a step removes exactly the persons
-- with its code and the counts chain: persons_after of one step = persons_before of the next.
WITH steps AS (
    -- The step codes are distinct, so a code's position in the list is its step's order.
    SELECT step_code, array_position($step_codes, step_code) AS step_order
    FROM (SELECT unnest($step_codes) AS step_code) AS codes
),
removed_per_step AS (
    SELECT exclusion_reason AS step_code, count(*) AS persons_removed
    FROM eligibility
    WHERE exclusion_reason IS NOT NULL
    GROUP BY exclusion_reason
),
persons_in_extract AS (
    SELECT count(*) AS persons FROM eligibility
),
steps_with_removals AS (
    SELECT s.step_order, s.step_code, coalesce(r.persons_removed, 0) AS persons_removed
    FROM steps AS s
    LEFT JOIN removed_per_step AS r USING (step_code)
)
SELECT step_order,
       step_code,
       e.persons - coalesce(sum(persons_removed) OVER earlier_steps, 0) AS persons_before,
       e.persons - sum(persons_removed) OVER steps_so_far AS persons_after,
       persons_removed
FROM steps_with_removals
CROSS JOIN persons_in_extract AS e
WINDOW earlier_steps AS (ORDER BY step_order ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
       steps_so_far AS (ORDER BY step_order ROWS UNBOUNDED PRECEDING)
ORDER BY step_order
