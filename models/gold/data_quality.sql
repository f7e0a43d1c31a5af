MODEL (
  name gold.data_quality,
  kind FULL,
  description 'Data-quality scorecard per delivery (snapshot) and landed dataset (loan_month, loan): accuracy, completeness, consistency, timeliness and validity in [0, 1], each the share of its checks that passed, and the weighted score of PRODUCT.md (accuracy .30, completeness .25, consistency .20, timeliness .15, validity .10). Rows as landed (bronze, with lineage) plus the snapshot manifests; the loan_month rows'' checks are counted by period in silver.loan_month_checks, against the loan''s canonical attributes (silver.loan). Every check is defined in contracts/gold/data_quality.yaml (contract: contracts/gold/data_quality.yaml).',
  grain (snapshot_id, dataset),
  column_descriptions @contract_column_descriptions('gold.data_quality')
);

WITH kinds AS (
  @file_kind_datasets()
), delivered AS (
  /* What each snapshot delivered per dataset: the manifest's files of the kinds feeding it. */
  SELECT
    f.snapshot_id,
    k.dataset,
    MIN(f.source) AS source,
    MIN(f.layout) AS layout,
    MIN(f.created_at) AS landed_at,
    CAST(SUM(f.rows_in) AS BIGINT) AS rows_in,
    CAST(SUM(f.rows_landed) AS BIGINT) AS rows_accepted,
    CAST(SUM(f.rows_quarantined) AS BIGINT) AS rows_quarantined
  FROM bronze.snapshot_file AS f
  JOIN kinds AS k
    ON k.layout = f.layout AND k.kind = f.kind
  GROUP BY
    f.snapshot_id,
    k.dataset
), month_scores AS (
  SELECT
    snapshot_id,
    'loan_month' AS dataset,
    CAST(SUM(rows) AS BIGINT) AS rows,
    MAX(period) AS latest_period,
    CAST(SUM(accuracy_checks) AS BIGINT) AS accuracy_checks,
    CAST(SUM(accuracy_passed) AS BIGINT) AS accuracy_passed,
    CAST(SUM(completeness_checks) AS BIGINT) AS completeness_checks,
    CAST(SUM(completeness_passed) AS BIGINT) AS completeness_passed,
    CAST(SUM(consistency_checks) AS BIGINT) AS consistency_checks,
    CAST(SUM(consistency_passed) AS BIGINT) AS consistency_passed
  FROM silver.loan_month_checks
  GROUP BY
    snapshot_id
), loan_checks AS (
  /* One row per landed loan row, compared with the same loan's previous delivery. */
  SELECT
    b._snapshot_id AS snapshot_id,
    b.as_of_period,
    /* accuracy: static attributes restated differently from the previous delivery */
    b.orig_rate = b.previous.orig_rate AS acc_orig_rate,
    b.orig_upb = b.previous.orig_upb AS acc_orig_upb,
    b.orig_term = b.previous.orig_term AS acc_orig_term,
    b.first_pay_date = b.previous.first_pay_date AS acc_first_pay_date,
    b.orig_date = b.previous.orig_date AS acc_orig_date,
    b.fico = b.previous.fico AS acc_fico,
    b.oltv = b.previous.oltv AS acc_oltv,
    b.dti = b.previous.dti AS acc_dti,
    b.state = b.previous.state AS acc_state,
    b.channel = b.previous.channel AS acc_channel,
    /* accuracy: maturity recomputed from the first payment date and the term */
    CASE
      WHEN NOT b.maturity_date IS NULL AND NOT b.first_pay_date IS NULL AND NOT b.orig_term IS NULL
      THEN ABS(DATE_DIFF('month', b.first_pay_date, b.maturity_date) + 1 - b.orig_term) <= 1
    END AS acc_maturity,
    /* completeness */
    NOT b.channel IS NULL AS cmp_channel,
    NOT b.seller IS NULL AS cmp_seller,
    NOT b.oltv IS NULL AS cmp_oltv,
    NOT b.ocltv IS NULL AS cmp_ocltv,
    NOT b.num_borrowers IS NULL AS cmp_num_borrowers,
    NOT b.dti IS NULL AS cmp_dti,
    NOT b.fico IS NULL AS cmp_fico,
    NOT b.first_time_buyer IS NULL AS cmp_first_time_buyer,
    NOT b.purpose IS NULL AS cmp_purpose,
    NOT b.property_type IS NULL AS cmp_property_type,
    NOT b.units IS NULL AS cmp_units,
    NOT b.occupancy IS NULL AS cmp_occupancy,
    NOT b.state IS NULL AS cmp_state,
    NOT b.zip3 IS NULL AS cmp_zip3,
    NOT b.product IS NULL AS cmp_product,
    CASE WHEN b.oltv > 80 THEN NOT b.mi_pct IS NULL END AS cmp_mi_pct,
    /* consistency */
    CASE WHEN NOT b.oltv IS NULL AND NOT b.ocltv IS NULL THEN b.ocltv >= b.oltv END AS con_cltv,
    CASE
      WHEN NOT b.orig_date IS NULL AND NOT b.first_pay_date IS NULL
      THEN b.first_pay_date > b.orig_date
    END AS con_first_payment_after_origination,
    CASE WHEN b.num_borrowers = 1 THEN b.co_fico IS NULL END AS con_single_borrower
  FROM (
    /* The previous delivery's attributes as one struct: one window value instead of ten. */
    SELECT
      *,
      LAG(STRUCT_PACK(orig_rate, orig_upb, orig_term, first_pay_date, orig_date,
        fico, oltv, dti, state, channel
      )) OVER (PARTITION BY loan_id ORDER BY _snapshot_id, _source_file, _line_number) AS previous
    FROM bronze.loan
  ) AS b
), loan_scores AS (
  SELECT
    snapshot_id,
    'loan' AS dataset,
    COUNT(*) AS rows,
    MAX(as_of_period) AS latest_period,
    COUNT(acc_orig_rate) + COUNT(acc_orig_upb) + COUNT(acc_orig_term) + COUNT(acc_first_pay_date)
    + COUNT(acc_orig_date) + COUNT(acc_fico) + COUNT(acc_oltv) + COUNT(acc_dti) + COUNT(acc_state)
    + COUNT(acc_channel) + COUNT(acc_maturity) AS accuracy_checks,
    COUNT(*) FILTER (WHERE acc_orig_rate) + COUNT(*) FILTER (WHERE acc_orig_upb) + COUNT(*) FILTER (WHERE acc_orig_term)
    + COUNT(*) FILTER (WHERE acc_first_pay_date) + COUNT(*) FILTER (WHERE acc_orig_date) + COUNT(*) FILTER (WHERE acc_fico) + COUNT(*) FILTER (WHERE acc_oltv)
    + COUNT(*) FILTER (WHERE acc_dti) + COUNT(*) FILTER (WHERE acc_state) + COUNT(*) FILTER (WHERE acc_channel) + COUNT(*) FILTER (WHERE acc_maturity) AS accuracy_passed,
    COUNT(cmp_channel) + COUNT(cmp_seller) + COUNT(cmp_oltv) + COUNT(cmp_ocltv) + COUNT(cmp_num_borrowers)
    + COUNT(cmp_dti) + COUNT(cmp_fico) + COUNT(cmp_first_time_buyer) + COUNT(cmp_purpose)
    + COUNT(cmp_property_type) + COUNT(cmp_units) + COUNT(cmp_occupancy) + COUNT(cmp_state)
    + COUNT(cmp_zip3) + COUNT(cmp_product) + COUNT(cmp_mi_pct) AS completeness_checks,
    COUNT(*) FILTER (WHERE cmp_channel) + COUNT(*) FILTER (WHERE cmp_seller) + COUNT(*) FILTER (WHERE cmp_oltv) + COUNT(*) FILTER (WHERE cmp_ocltv)
    + COUNT(*) FILTER (WHERE cmp_num_borrowers) + COUNT(*) FILTER (WHERE cmp_dti) + COUNT(*) FILTER (WHERE cmp_fico)
    + COUNT(*) FILTER (WHERE cmp_first_time_buyer) + COUNT(*) FILTER (WHERE cmp_purpose) + COUNT(*) FILTER (WHERE cmp_property_type)
    + COUNT(*) FILTER (WHERE cmp_units) + COUNT(*) FILTER (WHERE cmp_occupancy) + COUNT(*) FILTER (WHERE cmp_state) + COUNT_IF(cmp_zip3)
    + COUNT(*) FILTER (WHERE cmp_product) + COUNT(*) FILTER (WHERE cmp_mi_pct) AS completeness_passed,
    COUNT(con_cltv) + COUNT(con_first_payment_after_origination) + COUNT(con_single_borrower) AS consistency_checks,
    COUNT(*) FILTER (WHERE con_cltv) + COUNT(*) FILTER (WHERE con_first_payment_after_origination)
    + COUNT(*) FILTER (WHERE con_single_borrower) AS consistency_passed
  FROM loan_checks
  GROUP BY
    snapshot_id
), scores AS (
  SELECT * FROM month_scores
  UNION ALL
  SELECT * FROM loan_scores
), reference AS (
  /* The newest reporting month a snapshot delivered (its loan_month rows, else its loan rows). */
  SELECT
    snapshot_id,
    COALESCE(MAX(latest_period) FILTER (WHERE dataset = 'loan_month'), MAX(latest_period)) AS latest_period
  FROM scores
  GROUP BY
    snapshot_id
), dimensions AS (
  SELECT
    d.snapshot_id,
    d.dataset,
    d.source,
    d.layout,
    d.landed_at,
    r.latest_period,
    CAST(DATE_DIFF('day', CAST(r.latest_period + INTERVAL 1 MONTH AS DATE), CAST(LEFT(d.landed_at, 10) AS DATE)) AS INT) AS delivery_lag_days,
    d.rows_in,
    d.rows_quarantined,
    COALESCE(s.rows, 0) AS rows,
    COALESCE(s.accuracy_checks, 0) AS accuracy_checks,
    s.accuracy_passed / NULLIF(s.accuracy_checks, 0) AS accuracy,
    COALESCE(s.completeness_checks, 0) AS completeness_checks,
    s.completeness_passed / NULLIF(s.completeness_checks, 0) AS completeness,
    COALESCE(s.consistency_checks, 0) AS consistency_checks,
    s.consistency_passed / NULLIF(s.consistency_checks, 0) AS consistency,
    d.rows_accepted / NULLIF(d.rows_in, 0) AS validity
  FROM delivered AS d
  LEFT JOIN scores AS s
    ON s.snapshot_id = d.snapshot_id AND s.dataset = d.dataset
  LEFT JOIN reference AS r
    ON r.snapshot_id = d.snapshot_id
), timed AS (
  SELECT
    *,
    /* 1 when landed within 30 days after the end of the newest month, 0 from 90 days, linear between */
    CASE
      WHEN delivery_lag_days <= 30 THEN CAST(1 AS DOUBLE)
      WHEN delivery_lag_days >= 90 THEN CAST(0 AS DOUBLE)
      ELSE (90 - delivery_lag_days) / CAST(60 AS DOUBLE)
    END AS timeliness
  FROM dimensions
)
SELECT
  snapshot_id,
  dataset,
  source,
  layout,
  landed_at,
  latest_period,
  delivery_lag_days,
  rows_in,
  rows_quarantined,
  rows,
  accuracy,
  accuracy_checks,
  completeness,
  completeness_checks,
  consistency,
  consistency_checks,
  timeliness,
  validity,
  CAST((
    COALESCE(0.30 * accuracy, 0) + COALESCE(0.25 * completeness, 0) + COALESCE(0.20 * consistency, 0)
    + COALESCE(0.15 * timeliness, 0) + COALESCE(0.10 * validity, 0)
  ) / NULLIF(
    CASE WHEN accuracy IS NULL THEN 0 ELSE 0.30 END
    + CASE WHEN completeness IS NULL THEN 0 ELSE 0.25 END
    + CASE WHEN consistency IS NULL THEN 0 ELSE 0.20 END
    + CASE WHEN timeliness IS NULL THEN 0 ELSE 0.15 END
    + CASE WHEN validity IS NULL THEN 0 ELSE 0.10 END,
    0
  ) AS DOUBLE) AS score
FROM timed
