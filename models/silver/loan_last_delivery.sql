MODEL (
  name silver.loan_last_delivery,
  kind FULL,
  description 'Each loan''s origination facts as its last delivery before the build''s new snapshots stated them (delivery order: snapshot, file, line): what silver.loan_checks compares the loan''s new rows with. A build folds in the snapshots the build before it checked (those landed after the latest one here, other than its own new ones) and keeps every other loan''s row, so it reads one delivery, not every one ever landed; a build of every period folds every snapshot but its new ones.',
  grain loan_id,
  optimize_query TRUE,
  audits (
    not_null(columns := (loan_id, _snapshot_id)),
    unique_values(columns := (loan_id))
  )
);

WITH scope AS (
  SELECT
    everything,
    new_snapshots
  FROM main.build_scope
), folded_snapshots AS (
  /* A list for the semi-join below, as @snapshots_read gives the others: DuckDB then reads
     only these snapshots' files. */
  SELECT DISTINCT
    snapshot_id
  FROM bronze.snapshot_file
  WHERE
    NOT snapshot_id IN (SELECT UNNEST(new_snapshots) FROM scope)
    AND (
      (SELECT everything FROM scope)
      OR snapshot_id > (SELECT COALESCE(MAX(_snapshot_id), '') FROM silver.loan_last_delivery)
    )
), folded AS (
  SELECT
    loan_id,
    _snapshot_id,
    @compared_loan_attributes() AS attributes
  FROM bronze.loan
  WHERE
    _snapshot_id IN (SELECT snapshot_id FROM folded_snapshots)
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY loan_id ORDER BY _snapshot_id DESC, _source_file DESC, _line_number DESC) = 1
)
SELECT
  /* Typed: SQLMesh creates a table that reads itself empty, from its types. */
  CAST(loan_id AS VARCHAR) AS loan_id,
  CAST(_snapshot_id AS VARCHAR) AS _snapshot_id,
  @as_compared_loan_attributes(attributes) AS attributes
FROM (
  SELECT
    *
  FROM folded
  UNION ALL BY NAME
  SELECT
    loan_id,
    _snapshot_id,
    attributes
  FROM silver.loan_last_delivery
  WHERE
    NOT (SELECT everything FROM scope) AND NOT loan_id IN (SELECT loan_id FROM folded)
)
