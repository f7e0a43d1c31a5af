MODEL (
  name gold.vintage_curves,
  kind FULL,
  description 'Cumulative prepayment and default and 60+/90+ delinquency by origination quarter (vintage) and loan age, summed from the per-period counts of silver.vintage_counts; a vintage is every loan originated in the quarter that has at least one row on the tapes (contract: contracts/gold/vintage_curves.yaml).',
  grain (vintage, loan_age),
  column_descriptions @contract_column_descriptions('gold.vintage_curves'),
  audits (
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

WITH cohorts AS (
  /* The cohort: the loans with at least one row on the tapes, which gold.loan_snapshot holds
     one row each of, by origination quarter. */
  SELECT
    @vintage(orig_date, first_pay_date) AS vintage,
    COUNT(*) AS loans,
    SUM(orig_upb) AS orig_upb
  FROM gold.loan_snapshot
  GROUP BY
    vintage
), by_age AS (
  /* Each (vintage, age) gathers the periods its loans reached that age in. */
  SELECT
    vintage,
    loan_age,
    CAST(SUM(observed_loans) AS BIGINT) AS observed_loans,
    CAST(SUM(active_loans) AS BIGINT) AS active_loans,
    SUM(active_upb) AS active_upb,
    CAST(SUM(unknown_loans) AS BIGINT) AS unknown_loans,
    CAST(SUM(dq60p_loans) AS BIGINT) AS dq60p_loans,
    SUM(dq60p_upb) AS dq60p_upb,
    CAST(SUM(dq90p_loans) AS BIGINT) AS dq90p_loans,
    SUM(dq90p_upb) AS dq90p_upb,
    CAST(SUM(prepaid_loans) AS BIGINT) AS prepaid_loans,
    SUM(prepaid_upb) AS prepaid_upb,
    CAST(SUM(defaulted_loans) AS BIGINT) AS defaulted_loans,
    SUM(defaulted_upb) AS defaulted_upb
  FROM silver.vintage_counts
  GROUP BY
    vintage,
    loan_age
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
