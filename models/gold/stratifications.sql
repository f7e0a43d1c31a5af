MODEL (
  name gold.stratifications,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'The active book of every period stratified by FICO, original LTV, DTI, state, vintage (origination year), current note rate and channel: one row per period, dimension and bucket with count, UPB, shares, UPB-weighted averages and 30+/60+ delinquency by count and by UPB. One pass over the active loan-months with GROUPING SETS (contract: contracts/gold/stratifications.yaml, which defines the buckets).',
  grain (period, dimension, bucket),
  column_descriptions @contract_column_descriptions('gold.stratifications'),
  audits (
    forall(criteria := (
      dq60p_rate_count <= dq30p_rate_count,
      dq60p_rate_upb <= dq30p_rate_upb,
      loans >= 1
    ))
  )
);

WITH book AS (
  /* Every active loan-month with the attributes it is stratified by. Each numeric bucket is
     defined once, by its edges, as an order number; its label is looked up from that number
     (99 = attribute missing). */
  SELECT
    p.period,
    p.status,
    p.upb,
    p.age,
    p.rate,
    l.fico,
    l.oltv,
    l.dti,
    CASE
      WHEN l.fico IS NULL THEN 99
      WHEN l.fico < 620 THEN 1
      WHEN l.fico < 660 THEN 2
      WHEN l.fico < 700 THEN 3
      WHEN l.fico < 740 THEN 4
      WHEN l.fico < 780 THEN 5
      ELSE 6
    END AS fico_order,
    CASE
      WHEN l.oltv IS NULL THEN 99
      WHEN l.oltv <= 60 THEN 1
      WHEN l.oltv <= 70 THEN 2
      WHEN l.oltv <= 80 THEN 3
      WHEN l.oltv <= 90 THEN 4
      WHEN l.oltv <= 95 THEN 5
      ELSE 6
    END AS ltv_order,
    CASE
      WHEN l.dti IS NULL THEN 99
      WHEN l.dti <= 20 THEN 1
      WHEN l.dti <= 30 THEN 2
      WHEN l.dti <= 36 THEN 3
      WHEN l.dti <= 43 THEN 4
      WHEN l.dti <= 50 THEN 5
      ELSE 6
    END AS dti_order,
    COALESCE(l.state, 'missing') AS state_bucket,
    CASE WHEN l.state IS NULL THEN 99 ELSE 1 END AS state_order,
    STRFTIME(@origination_month(l.orig_date, l.first_pay_date), '%Y') AS vintage_bucket,
    1 AS vintage_order,
    /* Half-point rate buckets [3.0,3.5) ... [7.5,8.0) are orders 2..11; below 3 is 1, from 8 is 12. */
    CASE
      WHEN p.rate < 3 THEN 1
      WHEN p.rate >= 8 THEN 12
      ELSE CAST(FLOOR(p.rate * 2) AS INT) - 4
    END AS rate_order,
    COALESCE(l.channel, 'missing') AS channel_bucket,
    CASE WHEN l.channel IS NULL THEN 99 ELSE 1 END AS channel_order
  FROM silver.loan_performance AS p
  JOIN silver.loan AS l
    ON l.loan_id = p.loan_id
  WHERE
    p.period BETWEEN @start_date AND @end_date AND p.is_active
), labelled AS (
  /* LIST_EXTRACT, not list[i]: once the order's type is known, SQLMesh's optimizer (sqlglot)
     rewrites list[i] as list[i + 1], and every label would shift by one bucket. */
  SELECT
    *,
    CASE WHEN fico_order = 99 THEN 'missing' ELSE LIST_EXTRACT(['<620', '620-659', '660-699', '700-739', '740-779', '>=780'], fico_order) END AS fico_bucket,
    CASE WHEN ltv_order = 99 THEN 'missing' ELSE LIST_EXTRACT(['<=60', '60-70', '70-80', '80-90', '90-95', '>95'], ltv_order) END AS ltv_bucket,
    CASE WHEN dti_order = 99 THEN 'missing' ELSE LIST_EXTRACT(['<=20', '20-30', '30-36', '36-43', '43-50', '>50'], dti_order) END AS dti_bucket,
    CASE
      WHEN rate_order = 1 THEN '<3.0'
      WHEN rate_order = 12 THEN '>=8.0'
      ELSE '[' || PRINTF('%.1f', (rate_order + 4) / 2.0) || ',' || PRINTF('%.1f', (rate_order + 5) / 2.0) || ')'
    END AS rate_bucket
  FROM book
), grouped AS (
  SELECT
    period,
    CASE
      WHEN GROUPING(fico_bucket) = 0 THEN 'fico'
      WHEN GROUPING(ltv_bucket) = 0 THEN 'ltv'
      WHEN GROUPING(dti_bucket) = 0 THEN 'dti'
      WHEN GROUPING(state_bucket) = 0 THEN 'state'
      WHEN GROUPING(vintage_bucket) = 0 THEN 'vintage'
      WHEN GROUPING(rate_bucket) = 0 THEN 'rate'
      ELSE 'channel'
    END AS dimension,
    COALESCE(fico_bucket, ltv_bucket, dti_bucket, state_bucket, vintage_bucket, rate_bucket, channel_bucket) AS bucket,
    COALESCE(fico_order, ltv_order, dti_order, state_order, vintage_order, rate_order, channel_order) AS bucket_order,
    COUNT(*) AS loans,
    SUM(upb) AS upb,
    SUM(rate * upb) / NULLIF(SUM(upb), 0) AS wa_rate,
    SUM(fico * upb) / NULLIF(SUM(upb) FILTER (WHERE NOT fico IS NULL), 0) AS wa_fico,
    SUM(oltv * upb) / NULLIF(SUM(upb) FILTER (WHERE NOT oltv IS NULL), 0) AS wa_ltv,
    SUM(dti * upb) / NULLIF(SUM(upb) FILTER (WHERE NOT dti IS NULL), 0) AS wa_dti,
    SUM(age * upb) / NULLIF(SUM(upb), 0) AS wa_loan_age,
    COUNT(*) FILTER (WHERE status = 'unknown') AS unknown_loans,
    COUNT(*) FILTER (WHERE status IN ('dpd30', 'dpd60', 'dpd90p')) AS dq30p_loans,
    COALESCE(SUM(upb) FILTER (WHERE status IN ('dpd30', 'dpd60', 'dpd90p')), 0) AS dq30p_upb,
    COUNT(*) FILTER (WHERE status IN ('dpd60', 'dpd90p')) AS dq60p_loans,
    COALESCE(SUM(upb) FILTER (WHERE status IN ('dpd60', 'dpd90p')), 0) AS dq60p_upb
  FROM labelled
  GROUP BY
    GROUPING SETS (
      (period, fico_bucket, fico_order),
      (period, ltv_bucket, ltv_order),
      (period, dti_bucket, dti_order),
      (period, state_bucket, state_order),
      (period, vintage_bucket, vintage_order),
      (period, rate_bucket, rate_order),
      (period, channel_bucket, channel_order)
    )
)
SELECT
  period,
  dimension,
  bucket,
  CAST(bucket_order AS INT) AS bucket_order,
  loans,
  ROUND(upb, 2) AS upb,
  loans / SUM(loans) OVER (PARTITION BY period, dimension) AS share_loans,
  upb / NULLIF(SUM(upb) OVER (PARTITION BY period, dimension), 0) AS share_upb,
  ROUND(upb / loans, 2) AS avg_upb,
  wa_rate,
  wa_fico,
  wa_ltv,
  wa_dti,
  wa_loan_age,
  dq30p_loans / NULLIF(loans - unknown_loans, 0) AS dq30p_rate_count,
  dq30p_upb / NULLIF(upb, 0) AS dq30p_rate_upb,
  dq60p_loans / NULLIF(loans - unknown_loans, 0) AS dq60p_rate_count,
  dq60p_upb / NULLIF(upb, 0) AS dq60p_rate_upb
FROM grouped
