# One virtualenv for everything; every target creates it on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ROLE   ?= clinician
TENANT ?= demo-clinic

export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test token import dlq redrive audit-verify package checkov bench lint typecheck clean

$(STAMP): requirements.txt requirements-dev.txt requirements-checkov.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3 venv support is missing: apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m devstack.checkov
	touch $(STAMP)

## Start the whole local stack (moto + API + event pipelines) with demo data.
run: $(STAMP)
	$(PY) -m devstack run

## Run the whole test suite (lint, types, unit, API, pipelines, security, infra, package).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

## Print a bearer token for a demo user of the running stack.
token: $(STAMP)
	@$(PY) -m devstack token --role $(ROLE) --tenant $(TENANT)

## Load every FHIR bundle of a folder into the running stack.
import: $(STAMP)
	$(PY) -m devstack import --dir "$(DIR)" --tenant $(TENANT) --types "$(TYPES)"

## List the dead letters of every consumer DLQ (and the stream's) with their reason.
dlq: $(STAMP)
	@$(PY) -m devstack dlq

## Move one consumer's dead letters back to its queue after a fix: QUEUE=billing|audit|alerts.
redrive: $(STAMP)
	@$(PY) -m devstack redrive --queue "$(QUEUE)"

## Recompute a tenant's audit ledger on the running stack (exit 1 when broken): TENANT=...
audit-verify: $(STAMP)
	@$(PY) -m devstack audit-verify --tenant $(TENANT)

## Write the deployable CloudFormation template and zip under dist/.
package: $(STAMP)
	$(PY) -m devstack package --out dist

## checkov on the packaged template (skips justified in infra/README.md).
checkov: package
	$(PY) -m devstack.checkov dist/sam.json

## Benchmarks against a local stack; prints figures and writes bench/results.json.
bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) dist .local .pytest_cache .mypy_cache .ruff_cache .chalice/deployments
