AUDIT (
  name every_loan_month_has_a_loan,
  blocking TRUE
);

/* Monthly rows join their loan's attributes (original UPB, rate, term) in every gold model.
   A loan with months but no attributes row (e.g. a performance file delivered without its
   acquisition file) would silently drop out of gold, so the build fails instead, naming the
   loans that are missing. Only the periods being built are read: earlier ones were checked
   when they were built, and a loan leaves silver.loan only with a removed snapshot, which
   rebuilds every period. */
SELECT DISTINCT
  m.loan_id
FROM silver.loan_month AS m
LEFT JOIN silver.loan AS l
  ON l.loan_id = m.loan_id
WHERE
  m.period BETWEEN @start_date AND @end_date AND l.loan_id IS NULL
