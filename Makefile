# Two commands a user needs: `make serve` and `make test`. Both build .venv once
# (torch's CPU wheel first, so nothing pulls the CUDA build), then skip the install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv serve test lint bench fuzz clean

$(STAMP): requirements.lock.txt requirements.nodeps.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements.nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

serve: venv
	$(VENV)/bin/sightline serve $(ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Schemathesis against /api/v1/openapi.json on a throwaway server: >= 1,000 requests, JSON summary.
fuzz: venv
	$(PY) bench/fuzz_api.py $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) tests/.tmp
