# The two commands of the README:  `make demo`  and  `make test`.
# Both install what they need first (system packages once, a virtualenv in .venv).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# Tests run two workers on two cores; override with `make test WORKERS=4`.
WORKERS ?= 2

.PHONY: demo test install system python compile lint bench clean docker detection detection-logical detection-pgbackrest

demo: install compile
	$(BIN)/restoredrill demo

test: install lint docker compile
	$(BIN)/pytest -n $(WORKERS) tests

# Byte-compiled modules of the editable install: with PYTHONDONTWRITEBYTECODE=1 (CI images, our bench
# machines) every `restoredrill` process would otherwise compile the engine again (~0.1 s of CPU each).
# Python reads them even then, and ignores any that are older than their source.
compile: python
	$(BIN)/python -m compileall -q src > /dev/null

# The container targets need a Docker engine and a PostgreSQL image; no registry is reachable on CI, so
# the engine is started here (own data root) and `postgres:15` is built from the host's own binaries.
docker:
	./scripts/docker-engine.sh start
	./scripts/build-postgres-image.sh 15

install: system python

system:
	./scripts/install-system.sh
	./scripts/install-report-tools.sh

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The detection corpora of both layers in one table: the schema zoo's dumps and a pgBackRest repository,
# broken once per defect class and drilled for real, plus three healthy runs of each (a false alarm counts as
# a miss). Exits non-zero when a class is missed or a healthy run fails; the table goes to reports/detection.md.
detection: install
	$(BIN)/python -m tests.detection_all --healthy-runs 3 --markdown reports/detection.md

detection-logical: install
	$(BIN)/python -m tests.detection_all --layer logical --healthy-runs 3 --markdown reports/detection-logical.md

bench: install
	$(BIN)/python bench/bench_logical.py

detection-pgbackrest: install
	$(BIN)/python -m tests.detection_all --layer pgbackrest --healthy-runs 3 --markdown reports/detection-pgbackrest.md

clean:
	rm -rf $(VENV) .demo reports/evidence reports/allure-results reports/junit
