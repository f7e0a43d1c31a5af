MODEL (
  name silver.loan_month,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'Canonical monthly performance (contract: contracts/loan_month.yaml). A loan-period delivered more than once keeps the row of the latest snapshot; status follows PRODUCT.md. Built by reporting period: a run recomputes only the periods from the earliest one its new snapshots touch.',
  grain (loan_id, period)
);

WITH redelivered AS (
  /* Periods that more than one snapshot delivered. Extract lands each key once per snapshot,
     so only these periods' rows need ranking; ranking every row would sort them all. */
  SELECT
    period
  FROM bronze.loan_month
  WHERE
    period BETWEEN @start_date AND @end_date
  GROUP BY
    period
  HAVING
    COUNT(DISTINCT _snapshot_id) > 1
), delivered_once AS (
  SELECT
    *
  FROM bronze.loan_month
  WHERE
    period BETWEEN @start_date AND @end_date
    AND NOT period IN (SELECT period FROM redelivered)
), delivered_again AS (
  SELECT
    *
  FROM bronze.loan_month
  WHERE
    period IN (SELECT period FROM redelivered)
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY loan_id, period ORDER BY _snapshot_id DESC, _line_number DESC) = 1
), latest AS (
  SELECT
    *,
    CASE
      WHEN REGEXP_FULL_MATCH(dlq_status, '[0-9]+') THEN CAST(dlq_status AS INT)
    END AS months_delinquent
  FROM (
    SELECT * FROM delivered_once
    UNION ALL BY NAME
    SELECT * FROM delivered_again
  )
)
SELECT
  loan_id,
  period,
  current_rate,
  current_upb,
  loan_age,
  remaining_months,
  dlq_status,
  months_delinquent,
  CASE
    WHEN zero_balance_code = '01' THEN 'prepaid'
    WHEN zero_balance_code IN ('02', '03', '09', '15') THEN 'defaulted'
    WHEN NOT zero_balance_code IS NULL THEN 'other_removal'
    /* Freddie's RA (REO acquired): the property is held after foreclosure; MBA practice
       counts REO in the 90+ bucket until disposition ends the loan with a zero-balance code. */
    WHEN dlq_status = 'RA' THEN 'dpd90p'
    WHEN months_delinquent IS NULL THEN 'unknown'
    WHEN months_delinquent = 0 THEN 'current'
    WHEN months_delinquent = 1 THEN 'dpd30'
    WHEN months_delinquent = 2 THEN 'dpd60'
    ELSE 'dpd90p'
  END AS status,
  mod_flag,
  forbearance_indicator,
  zero_balance_code,
  zero_balance_date,
  upb_at_removal,
  last_paid_installment_date,
  foreclosure_date,
  disposition_date,
  foreclosure_costs,
  preservation_costs,
  asset_recovery_costs,
  holding_costs,
  holding_taxes,
  net_sales_proceeds,
  credit_enhancement_proceeds,
  repurchase_proceeds,
  other_foreclosure_proceeds,
  non_interest_bearing_upb,
  principal_forgiveness,
  _snapshot_id,
  _source_file,
  _line_number
FROM latest
