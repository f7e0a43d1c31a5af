MODEL (
  name gold.loss_mitigation_monthly,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'One row per reporting period: modification and borrower-assistance activity in the active book (stock of modified loans, newly modified loans, loans in forbearance, repayment and trial plans, entries into and exits from forbearance), by count and by UPB. Transitions compare each loan-month with the loan''s previous reported month (contract: contracts/gold/loss_mitigation_monthly.yaml). Built by reporting period; each loan''s last month before the built periods is read too.',
  grain period,
  column_descriptions @contract_column_descriptions('gold.loss_mitigation_monthly'),
  audits (
    forall(criteria := (
      modified_loans <= active_loans,
      new_modified_loans <= modified_loans,
      forbearance_loans <= active_loans,
      forbearance_entries <= forbearance_loans
    ))
  )
);

WITH last_before AS (
  /* The last reporting period before the built ones; NULL when they start at the first. */
  SELECT
    MAX(period) AS period
  FROM silver.loan_month
  WHERE
    period < @start_date
), at_last AS (
  SELECT
    loan_id,
    period,
    mod_flag,
    forbearance_indicator
  FROM silver.loan_month
  WHERE
    period = (SELECT period FROM last_before)
), not_at_last AS (
  /* Loans of the built periods without a row in that period: new loans, and loans that skipped
     it. Empty when nothing precedes the built periods, so a full build reads no history. */
  SELECT
    loan_id
  FROM silver.loan_month
  WHERE
    period BETWEEN @start_date AND @end_date AND NOT (SELECT period FROM last_before) IS NULL
  EXCEPT
  SELECT
    loan_id
  FROM at_last
), before_built AS (
  /* Each loan's previous reported month can be any earlier one: its last before the range. For
     a loan reported in the last period before the range that is its row there; only the others'
     history is searched (a nightly month at 12 M: 0.45 -> 0.22 s, not every loan's 60 months).
     ARG_MAX_NULL, as ARG_MAX would skip a month whose flag is NULL and take an older one. */
  SELECT
    *
  FROM at_last
  UNION ALL
  SELECT
    loan_id,
    MAX(period) AS period,
    ARG_MAX_NULL(mod_flag, period) AS mod_flag,
    ARG_MAX_NULL(forbearance_indicator, period) AS forbearance_indicator
  FROM silver.loan_month
  WHERE
    period < @start_date AND loan_id IN (SELECT loan_id FROM not_at_last)
  GROUP BY
    loan_id
), flagged AS (
  SELECT
    p.period,
    p.is_active,
    p.upb,
    m.mod_flag,
    m.forbearance_indicator,
    COALESCE(LAG(m.period) OVER w, b.period) AS prev_period,
    CASE WHEN LAG(m.period) OVER w IS NULL THEN b.mod_flag ELSE LAG(m.mod_flag) OVER w END AS prev_mod_flag,
    CASE
      WHEN LAG(m.period) OVER w IS NULL
      THEN b.forbearance_indicator
      ELSE LAG(m.forbearance_indicator) OVER w
    END AS prev_forbearance_indicator
  FROM silver.loan_performance AS p
  JOIN silver.loan_month AS m
    ON m.loan_id = p.loan_id AND m.period = p.period
  LEFT JOIN before_built AS b
    ON b.loan_id = m.loan_id
  WHERE
    p.period BETWEEN @start_date AND @end_date
  WINDOW w AS (PARTITION BY m.loan_id ORDER BY m.period)
), by_period AS (
  SELECT
    period,
    COUNT(*) FILTER (WHERE is_active) AS active_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active), 0) AS active_upb,
    COUNT(*) FILTER (WHERE is_active AND mod_flag = 'Y') AS modified_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active AND mod_flag = 'Y'), 0) AS modified_upb,
    COUNT(*) FILTER (WHERE is_active AND mod_flag = 'Y' AND prev_mod_flag = 'N') AS new_modified_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active AND mod_flag = 'Y' AND prev_mod_flag = 'N'), 0) AS new_modified_upb,
    COUNT(*) FILTER (WHERE is_active AND forbearance_indicator = 'F') AS forbearance_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active AND forbearance_indicator = 'F'), 0) AS forbearance_upb,
    COUNT(*) FILTER (
      WHERE is_active AND forbearance_indicator = 'F' AND NOT prev_period IS NULL
        AND prev_forbearance_indicator IS DISTINCT FROM 'F'
    ) AS forbearance_entries,
    COALESCE(SUM(upb) FILTER (
      WHERE is_active AND forbearance_indicator = 'F' AND NOT prev_period IS NULL
        AND prev_forbearance_indicator IS DISTINCT FROM 'F'
    ), 0) AS forbearance_entries_upb,
    COUNT(*) FILTER (
      WHERE is_active AND forbearance_indicator IS DISTINCT FROM 'F' AND prev_forbearance_indicator = 'F'
    ) AS forbearance_exits,
    COALESCE(SUM(upb) FILTER (
      WHERE is_active AND forbearance_indicator IS DISTINCT FROM 'F' AND prev_forbearance_indicator = 'F'
    ), 0) AS forbearance_exits_upb,
    COUNT(*) FILTER (WHERE is_active AND forbearance_indicator = 'R') AS repayment_plan_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active AND forbearance_indicator = 'R'), 0) AS repayment_plan_upb,
    COUNT(*) FILTER (WHERE is_active AND forbearance_indicator = 'T') AS trial_period_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active AND forbearance_indicator = 'T'), 0) AS trial_period_upb
  FROM flagged
  GROUP BY period
)
SELECT
  period,
  active_loans,
  ROUND(active_upb, 2) AS active_upb,
  modified_loans,
  ROUND(modified_upb, 2) AS modified_upb,
  modified_loans / NULLIF(active_loans, 0) AS modified_rate_count,
  modified_upb / NULLIF(active_upb, 0) AS modified_rate_upb,
  new_modified_loans,
  ROUND(new_modified_upb, 2) AS new_modified_upb,
  forbearance_loans,
  ROUND(forbearance_upb, 2) AS forbearance_upb,
  forbearance_loans / NULLIF(active_loans, 0) AS forbearance_rate_count,
  forbearance_upb / NULLIF(active_upb, 0) AS forbearance_rate_upb,
  forbearance_entries,
  ROUND(forbearance_entries_upb, 2) AS forbearance_entries_upb,
  forbearance_exits,
  ROUND(forbearance_exits_upb, 2) AS forbearance_exits_upb,
  repayment_plan_loans,
  ROUND(repayment_plan_upb, 2) AS repayment_plan_upb,
  trial_period_loans,
  ROUND(trial_period_upb, 2) AS trial_period_upb
FROM by_period
