"""Tables a servicing-tape snapshot holds (importable without loading dlt)."""

TABLES = ("loan_month", "loan", "quarantine")
