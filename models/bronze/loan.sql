MODEL (
  name bronze.loan,
  kind VIEW,
  description 'Static loan attributes of every committed snapshot, as landed (one row per loan per delivered file), with lineage.'
);

@committed_rows(loan)
