MODEL (
  name bronze.loan_month,
  kind VIEW,
  description 'Monthly performance rows of every committed snapshot, exactly as landed, with lineage (_snapshot_id, _source_file, _line_number). A snapshot is committed once its manifest exists, so rows of an interrupted extract never appear.'
);

@committed_rows(loan_month)
