# The README's two commands. Each sets itself up on a fresh machine (creates .venv, installs).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# OpenMP's wait policy: tests/conftest.py makes waiting threads sleep (OMP_WAIT_POLICY=PASSIVE),
# as tests run several processes at once; training keeps the OpenMP default (README, Speed).

.PHONY: run smoke test check check-update readme ui exp answer records install clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

# A first result in minutes: mnist_fashion_mlp on 2000 rows, 3 epochs, 2 seeds, as a DVC experiment
# run outside the workspace (--temp): the committed answer is not touched; its MLflow runs go to this
# workspace's store (`make ui`), its numbers to `dvc exp show`.
smoke: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="sqlite:///$(CURDIR)/mlflow.db" dvc exp run --temp \
		-S 'run.studies=[mnist_fashion_mlp]' -S run.train_limit=2000 -S run.max_epochs=3 -S 'run.seeds=[0,1]'

test: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# The CI reproducibility check (README, "Reproducibility check"): re-runs check/profile.yaml from
# scratch and compares every number with check/expected.json; exit 1 and a table when one moved.
check: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m mtlbench.check

check-update: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m mtlbench.check --update

# README's answer and docs' generated sections, from the committed results (never typed by hand).
readme: $(BIN)/.installed
	$(BIN)/python -m mtlbench.readme README.md  # and docs/*.md

# One of the answer's runs (params.yaml `runs:`; README, "The answer so far") through the pipeline, as a
# DVC experiment applied to the workspace: `make answer RUN=hps_modern_3000`, then commit its results.
# Units train one thread each, two at a time, on a local Ray instance; interrupted, the same command
# resumes (finished units are kept by their key). Hours on 2 CPU cores (archive/README.md has the times).
RUN ?= hps_modern_3000
answer: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/dvc exp run \
		-S 'run.studies=[$(RUN)]' -S run.executor=ray -S mlflow.log_models=false

# Experiments side by side, the answer first: each variant's paired gain per task and delta-m (the
# accuracies behind them, CI half-widths, p-values and dependency hashes left out: `dvc exp show` has
# them), then the params each experiment changed; DVC matches --drop from a column name's start.
exp: $(BIN)/.installed
	$(BIN)/dvc exp show --no-pager --only-changed --drop '^(src/|data/|results/|reports/|tasks$$|plans$$|params\.yaml$$)|.*_ci$$|.*\.p$$|^[a-z0-9_]+\.[a-zA-Z0-9_]+\.(accuracy|mse|macro_f1)$$|^delta_m_pct\.'

# The MLflow records of every evaluated run checked against the store (src/mtlbench/records.py): a
# lost one (runs deleted in the UI, the store removed) is made out of date for DVC and logged again.
records: $(BIN)/.installed
	$(BIN)/python -m mtlbench.records
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The MLflow UI on this machine only; open the printed link (parent runs side by side, charts).
ui: $(BIN)/.installed
	-$(BIN)/python -m mtlbench.records --check
	@echo "compare dedicated and multitask: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&compareRunsMode=CHART&searchFilter=tags.%60mtlbench.role%60%20%3D%20%27parent%27"
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000

clean:
	rm -rf results data/prepared .pytest_cache
