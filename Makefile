# The README's two commands: `make demo` (the main job) and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: test demo services lint typecheck pytest bench-ingest bench-footprint bench-alerts bench-prediction clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,embedded]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

services:
	@bash scripts/ensure-services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) services
	$(VENV)/bin/pytest -q

test: $(STAMP) services lint typecheck pytest

demo: $(STAMP)
	@bash scripts/ensure-services.sh || echo "[demo] local services not available: the demo falls back to embedded ones"
	$(VENV)/bin/coldchain demo

bench-ingest: $(STAMP) services
	$(PY) bench/bench_ingest.py

bench-alerts: $(STAMP) services
	$(PY) bench/bench_alerts.py

bench-prediction: $(STAMP)
	$(PY) bench/bench_prediction.py

bench-footprint: $(STAMP) services
	$(PY) bench/bench_footprint.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
