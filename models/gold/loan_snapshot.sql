MODEL (
  name gold.loan_snapshot,
  kind FULL,
  description 'The latest state of every loan with its static attributes (contract: contracts/gold/loan_snapshot.yaml).',
  grain loan_id,
  column_descriptions @contract_column_descriptions('gold.loan_snapshot'),
  audits (
    not_null(columns := (loan_id, period, status, upb)),
    unique_values(columns := (loan_id))
  )
);

SELECT
  p.loan_id,
  p.period,
  p.status,
  p.is_active,
  ROUND(p.upb, 2) AS upb,
  m.current_upb,
  m.current_rate,
  p.age AS loan_age,
  m.months_delinquent,
  m.mod_flag,
  m.zero_balance_code,
  m.zero_balance_date,
  l.orig_rate,
  l.orig_upb,
  l.orig_term,
  l.orig_date,
  l.first_pay_date,
  l.fico,
  l.oltv,
  l.dti,
  l.state,
  l.channel,
  l.purpose,
  l.servicer
FROM (
  /* Each loan's latest period, found on two columns before anything wide is joined. */
  SELECT
    loan_id,
    MAX(period) AS period
  FROM silver.loan_performance
  GROUP BY
    loan_id
) AS latest
JOIN silver.loan_performance AS p
  ON p.loan_id = latest.loan_id AND p.period = latest.period
JOIN silver.loan_month AS m
  ON m.loan_id = p.loan_id AND m.period = p.period
JOIN silver.loan AS l
  ON l.loan_id = p.loan_id
