MODEL (
  name gold.roll_rates,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'Status transitions from the prior period (current, dpd30, dpd60, dpd90p) to this period, by count and by prior UPB; loans with no row this period are left out (contract: contracts/gold/roll_rates.yaml).',
  grain (period, from_status, to_status),
  column_descriptions @contract_column_descriptions('gold.roll_rates')
);

SELECT
  period,
  prev_status AS from_status,
  status AS to_status,
  COUNT(*) AS loans,
  ROUND(SUM(prev_upb), 2) AS upb,
  COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY period, prev_status) AS rate_count,
  SUM(prev_upb) / NULLIF(SUM(SUM(prev_upb)) OVER (PARTITION BY period, prev_status), 0) AS rate_upb
FROM silver.loan_performance
WHERE
  period BETWEEN @start_date AND @end_date
  AND prev_status IN ('current', 'dpd30', 'dpd60', 'dpd90p')
GROUP BY
  period,
  prev_status,
  status
