MODEL (
  name gold.loan_snapshot,
  kind FULL,
  description 'The latest state of every loan with its static attributes (contract: contracts/gold/loan_snapshot.yaml). Built from the periods the build rebuilt (main.build_scope): a loan with a row there takes its latest row from those periods, every other loan keeps its previous row; a build of every period recomputes every loan.',
  grain loan_id,
  optimize_query TRUE,
  column_descriptions @contract_column_descriptions('gold.loan_snapshot')
);

WITH scope AS (
  SELECT
    everything,
    rebuilt_from
  FROM main.build_scope
), refreshed AS (
  /* A loan's latest period is at or after the first rebuilt period exactly when it has a row
     there, so those loans are recomputed from the rebuilt periods alone. Periods before that
     are unchanged, and so are the latest rows of the loans with no row since. */
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
    WHERE
      period >= (SELECT rebuilt_from FROM scope)
    GROUP BY
      loan_id
  ) AS latest
  JOIN silver.loan_performance AS p
    ON p.loan_id = latest.loan_id AND p.period = latest.period
  JOIN silver.loan_month AS m
    ON m.loan_id = p.loan_id AND m.period = p.period
  JOIN silver.loan AS l
    ON l.loan_id = p.loan_id
  WHERE
    p.period >= (SELECT rebuilt_from FROM scope) AND m.period >= (SELECT rebuilt_from FROM scope)
), kept AS (
  SELECT
    *
  FROM gold.loan_snapshot
  WHERE
    NOT (SELECT everything FROM scope)
    AND NOT loan_id IN (SELECT loan_id FROM refreshed)
)
SELECT
  @contract_casts('gold.loan_snapshot')
FROM (
  SELECT * FROM refreshed
  UNION ALL BY NAME
  SELECT * FROM kept
)
