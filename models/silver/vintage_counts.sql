MODEL (
  name silver.vintage_counts,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'What gold.vintage_curves adds up, counted per reporting period, vintage and loan age: the loans observed, active (count and UPB), of unknown status and 60+/90+ delinquent (count and UPB), and the loans that left the book there, prepaid or defaulted (count and UPB at removal; a loan leaves at its first row with a zero-balance code). Counting by period lets a new month count only its own rows instead of the whole history.',
  grain (period, vintage, loan_age),
  audits (
    not_null(columns := (
      period, vintage, loan_age, observed_loans, active_loans, active_upb, unknown_loans,
      dq60p_loans, dq60p_upb, dq90p_loans, dq90p_upb, prepaid_loans, prepaid_upb,
      defaulted_loans, defaulted_upb
    )),
    unique_combination_of_columns(columns := (period, vintage, loan_age))
  )
);

WITH first_exits AS (
  /* Each loan leaves the book once: at its first row with a zero-balance code, which may be
     before the periods built. */
  SELECT
    loan_id,
    MIN(period) AS period
  FROM silver.loan_performance
  WHERE
    NOT is_active AND period <= @end_date
  GROUP BY
    loan_id
)
/* The age axis is months since the first payment + 1, from the calendar, so every loan is
   counted once per age even when a tape reports ages that do not advance. */
SELECT
  p.period,
  @vintage(l.orig_date, l.first_pay_date) AS vintage,
  @age_from_first_payment(l.first_pay_date, p.period) AS loan_age,
  COUNT(*) AS observed_loans,
  COUNT(*) FILTER (WHERE p.is_active) AS active_loans,
  COALESCE(SUM(p.upb) FILTER (WHERE p.is_active), 0) AS active_upb,
  COUNT(*) FILTER (WHERE p.status = 'unknown') AS unknown_loans,
  COUNT(*) FILTER (WHERE p.status IN ('dpd60', 'dpd90p')) AS dq60p_loans,
  COALESCE(SUM(p.upb) FILTER (WHERE p.status IN ('dpd60', 'dpd90p')), 0) AS dq60p_upb,
  COUNT(*) FILTER (WHERE p.status = 'dpd90p') AS dq90p_loans,
  COALESCE(SUM(p.upb) FILTER (WHERE p.status = 'dpd90p'), 0) AS dq90p_upb,
  COUNT(*) FILTER (WHERE NOT x.loan_id IS NULL AND p.status = 'prepaid') AS prepaid_loans,
  COALESCE(SUM(p.upb) FILTER (WHERE NOT x.loan_id IS NULL AND p.status = 'prepaid'), 0) AS prepaid_upb,
  COUNT(*) FILTER (WHERE NOT x.loan_id IS NULL AND p.status = 'defaulted') AS defaulted_loans,
  COALESCE(SUM(p.upb) FILTER (WHERE NOT x.loan_id IS NULL AND p.status = 'defaulted'), 0) AS defaulted_upb
FROM silver.loan_performance AS p
JOIN silver.loan AS l
  ON l.loan_id = p.loan_id
LEFT JOIN first_exits AS x
  ON x.loan_id = p.loan_id AND x.period = p.period
WHERE
  p.period BETWEEN @start_date AND @end_date
GROUP BY
  p.period,
  vintage,
  loan_age
