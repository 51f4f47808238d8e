# Two commands matter: `make run` (the broker on the local Azure stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: install run test lint checkov chromium bench emulator clean

install: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# checkov pins many packages of its own, so it gets its own virtualenv rather than a line in requirements-dev.txt.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(STAMP_CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# Swagger UI for /api/docs is copied into the app (committed: func/azd publish this directory, not node_modules).
SWAGGER_UI := node_modules/swagger-ui-dist
DOCS_ASSETS := handlers/static/swagger-ui

$(STAMP_NODE): package.json package-lock.json
	SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
	cp $(SWAGGER_UI)/swagger-ui-bundle.js $(SWAGGER_UI)/swagger-ui.css $(SWAGGER_UI)/LICENSE $(DOCS_ASSETS)/
	touch $@

# State (queues, tables, emulator resources, ports, keys) persists in .devstack/ across runs.
# `make run FRESH=1` empties the stored data first; `make clean` removes .devstack/ altogether.
run: install
	$(PY) -m devstack.stack $(if $(filter 1 yes true,$(FRESH)),--fresh)

# Coverage of the product (shared/, handlers/, function_app) must stay at or above the gate.
COVERAGE_GATE := 90

# The /api/docs browser test needs Debian's chromium: installed when missing and this runs as root with apt-get
# (CI), skipped with its reason otherwise.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends

chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ $(APT_INSTALL) chromium || { timeout 300 apt-get update -qq && $(APT_INSTALL) chromium; }; }; } >/dev/null 2>&1 \
		|| echo "chromium is not installed: the /api/docs browser test will be skipped"

# tests/infra runs checkov too, so the test target builds its virtualenv.
test: install lint $(STAMP_CHECKOV) chromium
	$(PY) -m pytest --cov=shared --cov=handlers --cov=function_app --cov-report=term --cov-fail-under=$(COVERAGE_GATE)

lint: $(STAMP_PY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Scans infra/ with every finding infra/checkov-baseline.json accepts (each with its reason) left out.
checkov: $(STAMP_CHECKOV)
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --directory infra --framework bicep --skip-download --compact \
		--quiet --baseline infra/checkov-baseline.json

bench: install
	$(PY) -m bench

emulator: install
	$(PY) -m devstack.emulator --env-file .devstack/emulator.env

clean:
	rm -rf .devstack .pytest_cache .ruff_cache .coverage htmlcov
