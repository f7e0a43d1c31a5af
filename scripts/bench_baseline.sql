-- The plain-DuckDB baseline of scripts/bench.py: one query that reads the servicing tapes and
-- computes gold.portfolio_monthly, with none of the lakehouse around it (no snapshots, no
-- contracts, no quarantine, no validation, no publication). It is the floor the pipeline's
-- end-to-end time is compared with, so it must compute exactly what the models compute:
-- bench.py checks its result against the published gold.portfolio_monthly, column by column.
--
-- Semantics follow models/silver/loan_month.sql (status), models/silver/loan.sql (static
-- attributes from each loan's latest period), models/silver/loan_performance.sql (effective
-- upb, prior month, scheduled and unscheduled principal) and models/gold/portfolio_monthly.sql,
-- i.e. PRODUCT.md's "Metric definitions". What the pipeline adds on top (a loan-period
-- delivered twice, rows quarantined for breaking their contract) never occurs in generated
-- tapes, and a difference would show up in bench.py's comparison.
--
-- $tapes is the glob of the tape files; bench.py replaces it with an escaped SQL literal.
-- Tapes are Fannie Mae SFLP combined files (108 '|'-separated fields, a leading empty one), so
-- DuckDB names the fields column000 .. column107 and the field at layout position p
-- (pipelines/servicing_tape/layouts/fnma_sflp_combined.csv) is column(p - 1). Dates are MMYYYY;
-- an empty field is NULL.

WITH tape AS (
  SELECT
    column001 AS loan_id,                                        -- 2  LOAN_ID
    CAST(strptime(column002, '%m%Y') AS DATE) AS period,         -- 3  ACT_PERIOD
    TRY_CAST(column007 AS DOUBLE) AS orig_rate,                  -- 8  ORIG_RATE
    TRY_CAST(column008 AS DOUBLE) AS current_rate,               -- 9  CURR_RATE
    TRY_CAST(column009 AS DOUBLE) AS orig_upb,                   -- 10 ORIG_UPB
    TRY_CAST(column011 AS DOUBLE) AS current_upb,                -- 12 CURRENT_UPB
    TRY_CAST(column012 AS INTEGER) AS orig_term,                 -- 13 ORIG_TERM
    CAST(strptime(column014, '%m%Y') AS DATE) AS first_pay_date, -- 15 FIRST_PAY
    TRY_CAST(column015 AS INTEGER) AS loan_age,                  -- 16 LOAN_AGE
    column039 AS dlq_status,                                     -- 40 DLQ_STATUS
    CASE
      WHEN regexp_full_match(column039, '[0-9]+') THEN CAST(column039 AS INT)
    END AS months_delinquent,
    column043 AS zero_balance_code,                              -- 44 Zero_Bal_Code
    TRY_CAST(column045 AS DOUBLE) AS upb_at_removal              -- 46 LAST_UPB
  FROM read_csv($tapes, delim = '|', header = false, quote = '', escape = '', all_varchar = true)
), loan AS (
  -- silver.loan: the attributes of each loan's latest reporting period.
  SELECT
    loan_id,
    arg_max(orig_rate, period) AS orig_rate,
    arg_max(orig_upb, period) AS orig_upb,
    arg_max(orig_term, period) AS orig_term,
    arg_max(first_pay_date, period) AS first_pay_date
  FROM tape
  GROUP BY loan_id
), months AS (
  SELECT
    t.loan_id,
    t.period,
    CASE
      WHEN t.zero_balance_code = '01' THEN 'prepaid'
      WHEN t.zero_balance_code IN ('02', '03', '09', '15') THEN 'defaulted'
      WHEN t.zero_balance_code IS NOT NULL THEN 'other_removal'
      WHEN t.dlq_status = 'RA' THEN 'dpd90p'
      WHEN t.months_delinquent IS NULL THEN 'unknown'
      WHEN t.months_delinquent = 0 THEN 'current'
      WHEN t.months_delinquent = 1 THEN 'dpd30'
      WHEN t.months_delinquent = 2 THEN 'dpd60'
      ELSE 'dpd90p'
    END AS status,
    t.zero_balance_code IS NULL AS is_active,
    t.current_upb,
    t.upb_at_removal,
    COALESCE(t.current_rate, l.orig_rate) AS rate,
    COALESCE(t.loan_age, CAST(date_diff('month', l.first_pay_date, t.period) + 1 AS INT)) AS age,
    l.orig_rate / 1200.0 AS r0,
    l.orig_term AS n,
    l.orig_upb
  FROM tape AS t
  JOIN loan AS l USING (loan_id)
), measured AS (
  -- The effective upb: removal UPB on a terminating row, the scheduled balance B(age) while an
  -- active loan reports 0 (masked), else the reported UPB.
  SELECT
    loan_id,
    period,
    status,
    is_active,
    rate,
    age,
    n,
    CASE
      WHEN NOT is_active THEN COALESCE(upb_at_removal, current_upb, 0)
      WHEN current_upb > 0 THEN current_upb
      WHEN r0 = 0 THEN orig_upb * (1 - (CASE WHEN age > n THEN n ELSE age END) / n)
      ELSE orig_upb * (
        POWER(1 + r0, n) - POWER(1 + r0, CASE WHEN age > n THEN n ELSE age END)
      ) / (POWER(1 + r0, n) - 1)
    END AS upb
  FROM months
), paired AS (
  -- The loan's previous row counts only when it is the month just before (p - 1). CASE, not
  -- greatest(), as in the models: greatest() skips NULLs, and a NULL must stay NULL.
  SELECT
    period,
    status,
    is_active,
    upb,
    lag(period) OVER w = period - INTERVAL 1 MONTH AND lag(is_active) OVER w AS prev_active,
    lag(upb) OVER w AS prev_upb,
    lag(rate) OVER w / 1200.0 AS prev_r,
    CASE
      WHEN lag(n) OVER w - lag(age) OVER w < 1 THEN 1 ELSE lag(n) OVER w - lag(age) OVER w
    END AS prev_m
  FROM measured
  WINDOW w AS (PARTITION BY loan_id ORDER BY period)
), principal AS (
  SELECT
    period,
    status,
    is_active,
    upb,
    COALESCE(prev_active, FALSE) AS prev_active,
    CASE WHEN prev_active THEN prev_upb END AS prev_upb,
    CASE
      WHEN NOT prev_active THEN NULL
      WHEN prev_r = 0 THEN prev_upb / prev_m
      ELSE prev_upb * prev_r / (POWER(1 + prev_r, prev_m) - 1)
    END AS sched_principal
  FROM paired
), by_period AS (
  SELECT
    period,
    COUNT(*) FILTER (WHERE is_active) AS active_loans,
    COALESCE(SUM(upb) FILTER (WHERE is_active), 0) AS active_upb,
    COUNT(*) FILTER (WHERE status = 'current') AS current_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'current'), 0) AS current_upb,
    COUNT(*) FILTER (WHERE status = 'dpd30') AS dpd30_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd30'), 0) AS dpd30_upb,
    COUNT(*) FILTER (WHERE status = 'dpd60') AS dpd60_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd60'), 0) AS dpd60_upb,
    COUNT(*) FILTER (WHERE status = 'dpd90p') AS dpd90p_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'dpd90p'), 0) AS dpd90p_upb,
    COUNT(*) FILTER (WHERE status = 'unknown') AS unknown_loans,
    COUNT(*) FILTER (WHERE status = 'prepaid') AS prepaid_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'prepaid'), 0) AS prepaid_upb,
    COUNT(*) FILTER (WHERE status = 'defaulted') AS defaulted_loans,
    COALESCE(SUM(upb) FILTER (WHERE status = 'defaulted'), 0) AS defaulted_upb,
    -- unscheduled principal: prepaid -> all of prior upb - sched; active -> max(0, curtailment)
    SUM(
      CASE
        WHEN status = 'prepaid' THEN prev_upb - sched_principal
        WHEN is_active THEN CASE
          WHEN prev_upb - sched_principal - upb < 0 THEN 0 ELSE prev_upb - sched_principal - upb
        END
        ELSE 0
      END
    ) FILTER (WHERE prev_active) AS unscheduled,
    SUM(prev_upb - sched_principal) FILTER (WHERE prev_active) AS amortized_base,
    SUM(prev_upb) FILTER (WHERE prev_active AND status = 'defaulted') AS defaulted_prev_upb
  FROM principal
  GROUP BY period
), rates AS (
  SELECT
    *,
    (dpd30_loans + dpd60_loans + dpd90p_loans) / NULLIF(active_loans - unknown_loans, 0)
      AS dq30p_rate_count,
    (dpd30_upb + dpd60_upb + dpd90p_upb) / NULLIF(active_upb, 0) AS dq30p_rate_upb,
    unscheduled / NULLIF(amortized_base, 0) AS smm,
    COALESCE(defaulted_prev_upb, 0) / NULLIF(amortized_base, 0) AS mdr
  FROM by_period
)
SELECT
  period,
  active_loans,
  ROUND(active_upb, 2) AS active_upb,
  current_loans,
  ROUND(current_upb, 2) AS current_upb,
  dpd30_loans,
  ROUND(dpd30_upb, 2) AS dpd30_upb,
  dpd60_loans,
  ROUND(dpd60_upb, 2) AS dpd60_upb,
  dpd90p_loans,
  ROUND(dpd90p_upb, 2) AS dpd90p_upb,
  unknown_loans,
  prepaid_loans,
  ROUND(prepaid_upb, 2) AS prepaid_upb,
  defaulted_loans,
  ROUND(defaulted_upb, 2) AS defaulted_upb,
  dq30p_rate_count,
  dq30p_rate_upb,
  smm,
  1 - POWER(1 - smm, 12) AS cpr,
  mdr,
  1 - POWER(1 - mdr, 12) AS cdr
FROM rates
ORDER BY period
