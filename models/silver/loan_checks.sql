MODEL (
  name silver.loan_checks,
  kind FULL,
  description 'The data-quality checks of the landed loan rows (bronze, with lineage), counted per delivery (snapshot): how many checks of each dimension applied and how many passed, each row compared with the same loan''s previous delivery. gold.data_quality adds them to the loan_month counts. A build checks the rows of the snapshots landed since the last one (main.build_scope) and keeps the counts of the others, which a later delivery cannot change; a build of every period checks every row. Every check is defined in contracts/gold/data_quality.yaml.',
  grain snapshot_id,
  optimize_query TRUE,
  audits (
    not_null(columns := (
      snapshot_id, rows, accuracy_checks, accuracy_passed, completeness_checks, completeness_passed,
      consistency_checks, consistency_passed
    )),
    unique_values(columns := (snapshot_id))
  )
);

WITH scope AS (
  SELECT
    everything,
    new_snapshots
  FROM main.build_scope
), delivered AS (
  /* The rows this build checks: those of the snapshots landed since the last build. Checking
     every row ever delivered grew with each monthly delivery (12 M, two months after a full
     run: 0.5 -> 0.7 s). */
  SELECT
    *
  FROM bronze.loan
  WHERE
    _snapshot_id IN (@snapshots_read())
), earlier AS (
  /* Each of their loans' last delivery before them, in delivery order: what the first of its
     new rows is compared with, kept by silver.loan_last_delivery. Taking it from every earlier
     delivery instead grew with each one (12 M, 29 monthly deliveries after a full run: 1.7 s,
     growing by 0.04 s a month). Snapshot ids are landing times and a tenant's runs take turns,
     so the earlier snapshot orders this row before every new one. */
  SELECT
    loan_id,
    _snapshot_id,
    attributes AS compared
  FROM silver.loan_last_delivery
  WHERE
    NOT (SELECT everything FROM scope)
    AND loan_id IN (SELECT loan_id FROM delivered)
), repeated AS (
  /* Loans with more than one of these rows (a delivery of several files, or several snapshots
     in one build): each of their rows is compared with the one before it. */
  SELECT
    loan_id
  FROM delivered
  GROUP BY
    loan_id
  HAVING
    COUNT(*) > 1
), compared_rows AS (
  /* Each row with its previous delivery's compared attributes, as one struct. A loan delivered
     once here (nearly every loan, nightly) takes its earlier delivery's: one join, where a
     window over every row and its earlier delivery cost 0.2 s more at 12 M. */
  SELECT
    d.*,
    e.compared AS previous
  FROM delivered AS d
  LEFT JOIN earlier AS e
    ON e.loan_id = d.loan_id
  WHERE
    NOT d.loan_id IN (SELECT loan_id FROM repeated)
  UNION ALL BY NAME
  SELECT
    * EXCLUDE (compared)
  FROM (
    SELECT
      *,
      LAG(compared) OVER (PARTITION BY loan_id ORDER BY _snapshot_id, _source_file, _line_number) AS previous
    FROM (
      SELECT
        *,
        FALSE AS checked
      FROM earlier
      WHERE
        loan_id IN (SELECT loan_id FROM repeated)
      UNION ALL BY NAME
      SELECT
        *,
        @compared_loan_attributes() AS compared,
        TRUE AS checked
      FROM delivered
      WHERE
        loan_id IN (SELECT loan_id FROM repeated)
    )
  )
  WHERE
    checked
), checks AS (
  /* One row per checked loan row; every check is a BOOLEAN, NULL when it does not apply. */
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
  FROM compared_rows AS b
), counted AS (
  SELECT
    snapshot_id,
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
  FROM checks
  GROUP BY
    snapshot_id
)
SELECT
  /* Typed: SQLMesh creates a table that reads itself empty, from its types. */
  CAST(snapshot_id AS VARCHAR) AS snapshot_id,
  CAST(rows AS BIGINT) AS rows,
  CAST(latest_period AS DATE) AS latest_period,
  CAST(accuracy_checks AS BIGINT) AS accuracy_checks,
  CAST(accuracy_passed AS BIGINT) AS accuracy_passed,
  CAST(completeness_checks AS BIGINT) AS completeness_checks,
  CAST(completeness_passed AS BIGINT) AS completeness_passed,
  CAST(consistency_checks AS BIGINT) AS consistency_checks,
  CAST(consistency_passed AS BIGINT) AS consistency_passed
FROM (
  SELECT
    *
  FROM counted
  UNION ALL BY NAME
  SELECT
    *
  FROM silver.loan_checks
  WHERE
    NOT (SELECT everything FROM scope)
    AND NOT snapshot_id IN (SELECT UNNEST(new_snapshots) FROM scope)
)
