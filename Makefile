# ServicerVault: `make demo` runs the whole lakehouse for tenant `demo`; `make test` runs the suite.
# Needs only Python >= 3.11 and make: uv is bootstrapped into .tools/ when it is not on PATH.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)

.PHONY: install demo test test-fast lint bench clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (Codespaces, CI images) Python would
# otherwise recompile Great Expectations, SQLMesh and dlt on every run (GE's import: 7 s -> 3 s).
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --group dev --compile-bytecode
	@touch $@

install: .venv/.installed

demo: install
	$(UV) run --frozen vault demo

test: install
	$(UV) run --frozen pytest

test-fast: install
	$(UV) run --frozen pytest -m "not slow"

# Not part of `make test`: ~20 minutes and ~15 GB of disk at the default sizes.
bench: install
	$(UV) run --frozen python scripts/bench.py

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

clean:
	rm -rf .vault .tools .venv .pytest_cache .ruff_cache
