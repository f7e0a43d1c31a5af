MODEL (
  name bronze.loan,
  kind VIEW,
  description 'Static loan attributes of every committed snapshot, as landed (one row per loan per delivered file), with lineage.'
);

SELECT
  rows.*
FROM READ_PARQUET(@snapshots_root || '/*/*/loan/*.parquet', union_by_name := TRUE) AS rows
WHERE
  rows._snapshot_id IN (
    SELECT snapshot_id
    FROM READ_JSON(@snapshots_root || '/*/*/manifest.json', columns := {'snapshot_id': 'VARCHAR'})
  )
