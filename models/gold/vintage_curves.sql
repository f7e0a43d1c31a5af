MODEL (
  name gold.vintage_curves,
  kind FULL,
  description 'Cumulative prepayment and default and 60+/90+ delinquency by origination quarter (vintage) and loan age, from silver.loan_performance and silver.loan; a vintage is every loan originated in the quarter that has at least one row on the tapes (contract: contracts/gold/vintage_curves.yaml).',
  grain (vintage, loan_age),
  column_descriptions @contract_column_descriptions('gold.vintage_curves'),
  audits (
    not_null(columns := (
      vintage, loan_age, loans, orig_upb, observed_loans, active_loans, active_upb,
      prepaid_loans, prepaid_upb, defaulted_loans, defaulted_upb,
      cum_prepaid_loans, cum_prepaid_upb, cum_defaulted_loans, cum_defaulted_upb,
      cum_prepaid_rate_count, cum_defaulted_rate_count
    )),
    unique_combination_of_columns(columns := (vintage, loan_age)),
    accepted_range(column := cum_prepaid_rate_count, min_v := 0, max_v := 1),
    accepted_range(column := cum_defaulted_rate_count, min_v := 0, max_v := 1),
    accepted_range(column := dq60p_rate_count, min_v := 0, max_v := 1),
    accepted_range(column := dq90p_rate_count, min_v := 0, max_v := 1),
    forall(criteria := (
      active_loans <= observed_loans,
      observed_loans <= loans,
      prepaid_loans + defaulted_loans <= observed_loans,
      cum_prepaid_loans + cum_defaulted_loans <= loans,
      dq90p_rate_count <= dq60p_rate_count,
      dq90p_rate_upb <= dq60p_rate_upb
    ))
  )
);

WITH loans AS (
  /* The cohort: loans with at least one performance row, by origination quarter. */
  SELECT
    l.loan_id,
    l.orig_upb,
    l.first_pay_date,
    STRFTIME(@origination_month(l.orig_date, l.first_pay_date), '%Y') || 'Q' || QUARTER(@origination_month(l.orig_date, l.first_pay_date)) AS vintage
  FROM silver.loan AS l
  WHERE
    l.loan_id IN (SELECT loan_id FROM silver.loan_performance)
), cohorts AS (
  SELECT
    vintage,
    COUNT(*) AS loans,
    SUM(orig_upb) AS orig_upb
  FROM loans
  GROUP BY vintage
), observed AS (
  /* The age axis is months since the first payment + 1, from the calendar, so every loan is
     counted once per age even when a tape reports ages that do not advance. */
  SELECT
    l.vintage,
    @age_from_first_payment(l.first_pay_date, p.period) AS loan_age,
    COUNT(*) AS observed_loans,
    COUNT(*) FILTER (WHERE p.is_active) AS active_loans,
    COALESCE(SUM(p.upb) FILTER (WHERE p.is_active), 0) AS active_upb,
    COUNT(*) FILTER (WHERE p.status = 'unknown') AS unknown_loans,
    COUNT(*) FILTER (WHERE p.status IN ('dpd60', 'dpd90p')) AS dq60p_loans,
    COALESCE(SUM(p.upb) FILTER (WHERE p.status IN ('dpd60', 'dpd90p')), 0) AS dq60p_upb,
    COUNT(*) FILTER (WHERE p.status = 'dpd90p') AS dq90p_loans,
    COALESCE(SUM(p.upb) FILTER (WHERE p.status = 'dpd90p'), 0) AS dq90p_upb
  FROM silver.loan_performance AS p
  JOIN loans AS l
    ON l.loan_id = p.loan_id
  GROUP BY
    l.vintage,
    loan_age
), exits AS (
  /* Each loan leaves the book once: at its first row with a zero-balance code. */
  SELECT
    loan_id,
    MIN(period) AS period,
    ARG_MIN(status, period) AS status,
    ARG_MIN(upb, period) AS upb
  FROM silver.loan_performance
  WHERE
    NOT is_active
  GROUP BY
    loan_id
), exits_by_age AS (
  SELECT
    l.vintage,
    @age_from_first_payment(l.first_pay_date, e.period) AS loan_age,
    COUNT(*) FILTER (WHERE e.status = 'prepaid') AS prepaid_loans,
    COALESCE(SUM(e.upb) FILTER (WHERE e.status = 'prepaid'), 0) AS prepaid_upb,
    COUNT(*) FILTER (WHERE e.status = 'defaulted') AS defaulted_loans,
    COALESCE(SUM(e.upb) FILTER (WHERE e.status = 'defaulted'), 0) AS defaulted_upb
  FROM exits AS e
  JOIN loans AS l
    ON l.loan_id = e.loan_id
  GROUP BY
    l.vintage,
    loan_age
), by_age AS (
  SELECT
    o.*,
    COALESCE(x.prepaid_loans, 0) AS prepaid_loans,
    COALESCE(x.prepaid_upb, 0) AS prepaid_upb,
    COALESCE(x.defaulted_loans, 0) AS defaulted_loans,
    COALESCE(x.defaulted_upb, 0) AS defaulted_upb
  FROM observed AS o
  LEFT JOIN exits_by_age AS x
    ON x.vintage = o.vintage AND x.loan_age = o.loan_age
), cumulative AS (
  SELECT
    a.*,
    c.loans,
    c.orig_upb,
    SUM(a.prepaid_loans) OVER w AS cum_prepaid_loans,
    SUM(a.prepaid_upb) OVER w AS cum_prepaid_upb,
    SUM(a.defaulted_loans) OVER w AS cum_defaulted_loans,
    SUM(a.defaulted_upb) OVER w AS cum_defaulted_upb
  FROM by_age AS a
  JOIN cohorts AS c
    ON c.vintage = a.vintage
  WINDOW w AS (PARTITION BY a.vintage ORDER BY a.loan_age ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
  vintage,
  loan_age,
  loans,
  ROUND(orig_upb, 2) AS orig_upb,
  observed_loans,
  active_loans,
  ROUND(active_upb, 2) AS active_upb,
  prepaid_loans,
  ROUND(prepaid_upb, 2) AS prepaid_upb,
  defaulted_loans,
  ROUND(defaulted_upb, 2) AS defaulted_upb,
  CAST(cum_prepaid_loans AS BIGINT) AS cum_prepaid_loans,
  ROUND(cum_prepaid_upb, 2) AS cum_prepaid_upb,
  CAST(cum_defaulted_loans AS BIGINT) AS cum_defaulted_loans,
  ROUND(cum_defaulted_upb, 2) AS cum_defaulted_upb,
  cum_prepaid_loans / loans AS cum_prepaid_rate_count,
  cum_prepaid_upb / NULLIF(orig_upb, 0) AS cum_prepaid_rate_upb,
  cum_defaulted_loans / loans AS cum_defaulted_rate_count,
  cum_defaulted_upb / NULLIF(orig_upb, 0) AS cum_defaulted_rate_upb,
  dq60p_loans / NULLIF(active_loans - unknown_loans, 0) AS dq60p_rate_count,
  dq60p_upb / NULLIF(active_upb, 0) AS dq60p_rate_upb,
  dq90p_loans / NULLIF(active_loans - unknown_loans, 0) AS dq90p_rate_count,
  dq90p_upb / NULLIF(active_upb, 0) AS dq90p_rate_upb
FROM cumulative
