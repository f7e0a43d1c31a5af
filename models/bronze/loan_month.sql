MODEL (
  name bronze.loan_month,
  kind VIEW,
  description 'Monthly performance rows of every committed snapshot, exactly as landed, with lineage (_snapshot_id, _source_file, _line_number). A snapshot is committed once its manifest exists, so rows of an interrupted extract never appear.'
);

SELECT
  rows.*
FROM READ_PARQUET(@snapshots_root || '/*/*/loan_month/*.parquet', union_by_name := TRUE) AS rows
WHERE
  rows._snapshot_id IN (
    SELECT snapshot_id
    FROM READ_JSON(@snapshots_root || '/*/*/manifest.json', columns := {'snapshot_id': 'VARCHAR'})
  )
