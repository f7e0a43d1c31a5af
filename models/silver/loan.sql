MODEL (
  name silver.loan,
  kind FULL,
  description 'Canonical static loan attributes (contract: contracts/loan.yaml), one row per loan, from the latest reporting period of the latest snapshot.',
  grain loan_id
);

SELECT
  *
FROM bronze.loan
QUALIFY
  ROW_NUMBER() OVER (
    PARTITION BY loan_id
    ORDER BY as_of_period DESC, _snapshot_id DESC, _line_number DESC
  ) = 1
