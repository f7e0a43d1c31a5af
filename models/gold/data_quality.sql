MODEL (
  name gold.data_quality,
  kind FULL,
  description 'Data-quality scorecard per delivery (snapshot) and landed dataset (loan_month, loan): accuracy, completeness, consistency, timeliness and validity in [0, 1], each the share of its checks that passed, and the weighted score of PRODUCT.md (accuracy .30, completeness .25, consistency .20, timeliness .15, validity .10). Rows as landed (bronze, with lineage) plus the snapshot manifests; the loan_month rows'' checks are counted by period in silver.loan_month_checks, against the loan''s canonical attributes (silver.loan), and the loan rows'' checks per snapshot in silver.loan_checks. Every check is defined in contracts/gold/data_quality.yaml (contract: contracts/gold/data_quality.yaml).',
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
), loan_scores AS (
  /* counted per delivery by silver.loan_checks */
  SELECT
    snapshot_id,
    'loan' AS dataset,
    rows,
    latest_period,
    accuracy_checks,
    accuracy_passed,
    completeness_checks,
    completeness_passed,
    consistency_checks,
    consistency_passed
  FROM silver.loan_checks
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
