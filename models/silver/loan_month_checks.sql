MODEL (
  name silver.loan_month_checks,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column period
  ),
  allow_partials TRUE,
  description 'The data-quality checks of the landed loan_month rows (bronze, with lineage), counted per delivery (snapshot) and reporting period: how many checks of each dimension applied and how many passed, each row checked against the loan''s canonical attributes (silver.loan). gold.data_quality adds them up per delivery; counting them by period lets a new month check only its own rows. Every check is defined in contracts/gold/data_quality.yaml.',
  grain (snapshot_id, period),
  audits (
    not_null(columns := (
      snapshot_id, period, rows, accuracy_checks, accuracy_passed, completeness_checks,
      completeness_passed, consistency_checks, consistency_passed
    )),
    unique_combination_of_columns(columns := (snapshot_id, period))
  )
);

WITH month_rows AS (
  /* Landed loan_month rows with the loan's canonical terms and the instalments paid by now:
     loan age (reported, else derived from the first payment date) less months delinquent. */
  SELECT
    lm.*,
    l.first_pay_date,
    l.orig_rate,
    l.orig_upb,
    l.orig_term,
    l.product,
    COALESCE(lm.loan_age, @age_from_first_payment(l.first_pay_date, lm.period))
    - CASE WHEN REGEXP_FULL_MATCH(lm.dlq_status, '[0-9]+') THEN CAST(lm.dlq_status AS INT) END AS paid
  FROM bronze.loan_month AS lm
  LEFT JOIN silver.loan AS l
    ON l.loan_id = lm.loan_id
  WHERE
    lm.period BETWEEN @start_date AND @end_date
), month_checks AS (
  /* One row per landed loan_month row; every check is a BOOLEAN, NULL when it does not apply. */
  SELECT
    _snapshot_id AS snapshot_id,
    period,
    /* accuracy */
    CASE
      WHEN NOT loan_age IS NULL AND NOT first_pay_date IS NULL
      THEN ABS(loan_age - @age_from_first_payment(first_pay_date, period)) <= 1
    END AS acc_loan_age,
    CASE
      WHEN zero_balance_code IS NULL
      AND current_upb > 0
      AND mod_flag IS DISTINCT FROM 'Y'
      AND product IS DISTINCT FROM 'ARM'
      AND NOT paid IS NULL
      AND NOT orig_upb IS NULL
      AND NOT orig_rate IS NULL
      AND orig_term > 0
      /* B(paid) from the original UPB + 500 (public GSE files round it to the nearest 1,000),
         plus 10 for the servicer's rounding of interest to the cent */
      THEN current_upb <= 10 + (orig_upb + 500) * (
        CASE
          WHEN orig_rate = 0
          THEN 1 - (CASE WHEN paid < 0 THEN 0 WHEN paid > orig_term THEN orig_term ELSE paid END) / orig_term
          ELSE (
            POWER(1 + orig_rate / 1200, orig_term)
            - POWER(1 + orig_rate / 1200, CASE WHEN paid < 0 THEN 0 WHEN paid > orig_term THEN orig_term ELSE paid END)
          ) / (POWER(1 + orig_rate / 1200, orig_term) - 1)
        END
      )
    END AS acc_upb,
    CASE
      WHEN NOT current_rate IS NULL
      AND mod_flag IS DISTINCT FROM 'Y'
      AND product IS DISTINCT FROM 'ARM'
      AND NOT orig_rate IS NULL
      THEN ABS(current_rate - orig_rate) < 0.0005
    END AS acc_rate,
    /* completeness: cells that should be present */
    NOT current_rate IS NULL AS cmp_current_rate,
    NOT current_upb IS NULL AS cmp_current_upb,
    NOT loan_age IS NULL AS cmp_loan_age,
    NOT remaining_months IS NULL AS cmp_remaining_months,
    NOT dlq_status IS NULL AS cmp_dlq_status,
    NOT mod_flag IS NULL AS cmp_mod_flag,
    CASE WHEN NOT zero_balance_code IS NULL THEN NOT zero_balance_date IS NULL END AS cmp_zero_balance_date,
    CASE
      WHEN zero_balance_code IN ('02', '03', '09', '15')
      THEN NOT last_paid_installment_date IS NULL
    END AS cmp_last_paid_installment_date,
    CASE WHEN NOT disposition_date IS NULL THEN NOT net_sales_proceeds IS NULL END AS cmp_net_sales_proceeds,
    /* consistency: fields of the row that must not contradict each other */
    CASE WHEN NOT zero_balance_date IS NULL THEN NOT zero_balance_code IS NULL END AS con_zero_balance_code,
    CASE WHEN NOT zero_balance_date IS NULL THEN zero_balance_date <= period END AS con_zero_balance_date,
    CASE
      WHEN NOT last_paid_installment_date IS NULL AND NOT disposition_date IS NULL
      THEN last_paid_installment_date <= disposition_date
    END AS con_last_paid_before_disposition,
    CASE
      WHEN NOT foreclosure_date IS NULL AND NOT disposition_date IS NULL
      THEN foreclosure_date <= disposition_date
    END AS con_foreclosure_before_disposition,
    CASE
      WHEN non_interest_bearing_upb > 0 AND NOT mod_flag IS NULL
      THEN mod_flag = 'Y'
    END AS con_deferred_upb_modified,
    CASE
      WHEN NOT loan_age IS NULL
      AND NOT remaining_months IS NULL
      AND NOT orig_term IS NULL
      AND mod_flag IS DISTINCT FROM 'Y'
      THEN ABS(loan_age + remaining_months - orig_term) <= 1
    END AS con_term
  FROM month_rows
)
SELECT
  snapshot_id,
  period,
  COUNT(*) AS rows,
  COUNT(acc_loan_age) + COUNT(acc_upb) + COUNT(acc_rate) AS accuracy_checks,
  COUNT(*) FILTER (WHERE acc_loan_age) + COUNT(*) FILTER (WHERE acc_upb) + COUNT(*) FILTER (WHERE acc_rate) AS accuracy_passed,
  COUNT(cmp_current_rate) + COUNT(cmp_current_upb) + COUNT(cmp_loan_age) + COUNT(cmp_remaining_months)
  + COUNT(cmp_dlq_status) + COUNT(cmp_mod_flag) + COUNT(cmp_zero_balance_date)
  + COUNT(cmp_last_paid_installment_date) + COUNT(cmp_net_sales_proceeds) AS completeness_checks,
  COUNT(*) FILTER (WHERE cmp_current_rate) + COUNT(*) FILTER (WHERE cmp_current_upb) + COUNT(*) FILTER (WHERE cmp_loan_age)
  + COUNT(*) FILTER (WHERE cmp_remaining_months) + COUNT(*) FILTER (WHERE cmp_dlq_status) + COUNT(*) FILTER (WHERE cmp_mod_flag)
  + COUNT(*) FILTER (WHERE cmp_zero_balance_date) + COUNT(*) FILTER (WHERE cmp_last_paid_installment_date)
  + COUNT(*) FILTER (WHERE cmp_net_sales_proceeds) AS completeness_passed,
  COUNT(con_zero_balance_code) + COUNT(con_zero_balance_date) + COUNT(con_last_paid_before_disposition)
  + COUNT(con_foreclosure_before_disposition) + COUNT(con_deferred_upb_modified) + COUNT(con_term) AS consistency_checks,
  COUNT(*) FILTER (WHERE con_zero_balance_code) + COUNT(*) FILTER (WHERE con_zero_balance_date)
  + COUNT(*) FILTER (WHERE con_last_paid_before_disposition) + COUNT(*) FILTER (WHERE con_foreclosure_before_disposition)
  + COUNT(*) FILTER (WHERE con_deferred_upb_modified) + COUNT(*) FILTER (WHERE con_term) AS consistency_passed
FROM month_checks
GROUP BY
  snapshot_id,
  period
