MODEL (
  name gold.portfolio_monthly,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'One row per reporting period: the active book by status, terminations, 30+ delinquency rates and SMM/CPR/MDR/CDR (contract: contracts/gold/portfolio_monthly.yaml; definitions: PRODUCT.md).',
  grain period,
  column_descriptions @contract_column_descriptions('gold.portfolio_monthly')
);

WITH by_period AS (
  SELECT
    period,
    COUNT(*) FILTER (WHERE is_active) AS active_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active), 0) AS active_upb,
    COUNT(*) FILTER (WHERE status = 'current') AS current_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'current'), 0) AS current_upb,
    COUNT(*) FILTER (WHERE status = 'dpd30') AS dpd30_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd30'), 0) AS dpd30_upb,
    COUNT(*) FILTER (WHERE status = 'dpd60') AS dpd60_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd60'), 0) AS dpd60_upb,
    COUNT(*) FILTER (WHERE status = 'dpd90p') AS dpd90p_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd90p'), 0) AS dpd90p_upb,
    COUNT(*) FILTER (WHERE status = 'unknown') AS unknown_loans,
    COUNT(*) FILTER (WHERE status = 'prepaid') AS prepaid_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'prepaid'), 0) AS prepaid_upb,
    COUNT(*) FILTER (WHERE status = 'defaulted') AS defaulted_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'defaulted'), 0) AS defaulted_upb,
    SUM(unscheduled_principal) FILTER (WHERE prev_active) AS unscheduled,
    SUM(prev_upb - sched_principal) FILTER (WHERE prev_active) AS amortized_base,
    SUM(prev_upb) FILTER (WHERE prev_active AND status = 'defaulted') AS defaulted_prev_upb
  FROM silver.loan_performance
  WHERE
    period BETWEEN @start_date AND @end_date
  GROUP BY period
), rates AS (
  SELECT
    *,
    (dpd30_loans + dpd60_loans + dpd90p_loans) / NULLIF(active_loans - unknown_loans, 0) AS dq30p_rate_count,
    (dpd30_upb + dpd60_upb + dpd90p_upb) / NULLIF(active_upb, 0) AS dq30p_rate_upb,
    unscheduled / NULLIF(amortized_base, 0) AS smm,
    COALESCE(defaulted_prev_upb, 0) / NULLIF(amortized_base, 0) AS mdr
  FROM by_period
)
SELECT
  period,
  active_loans,
  ROUND(active_upb, 2) AS active_upb,
  current_loans,
  ROUND(current_upb, 2) AS current_upb,
  dpd30_loans,
  ROUND(dpd30_upb, 2) AS dpd30_upb,
  dpd60_loans,
  ROUND(dpd60_upb, 2) AS dpd60_upb,
  dpd90p_loans,
  ROUND(dpd90p_upb, 2) AS dpd90p_upb,
  unknown_loans,
  prepaid_loans,
  ROUND(prepaid_upb, 2) AS prepaid_upb,
  defaulted_loans,
  ROUND(defaulted_upb, 2) AS defaulted_upb,
  dq30p_rate_count,
  dq30p_rate_upb,
  smm,
  1 - POWER(1 - smm, 12) AS cpr,
  mdr,
  1 - POWER(1 - mdr, 12) AS cdr
FROM rates
