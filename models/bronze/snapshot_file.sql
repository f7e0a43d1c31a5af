MODEL (
  name bronze.snapshot_file,
  kind VIEW,
  description 'One row per delivered tape file of every committed snapshot, from the snapshot manifests: layout, file kind, landing time and rows in / landed / quarantined (rows in = landed + quarantined for every file).'
);

@committed_manifest_files()
