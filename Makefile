# The README's two commands. Each sets itself up on a fresh machine (creates .venv, installs).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# OpenMP's wait policy: tests/conftest.py makes waiting threads sleep (OMP_WAIT_POLICY=PASSIVE),
# as tests run several processes at once; training keeps the OpenMP default (README, Speed).

.PHONY: run smoke test check check-update readme ui exp hps-cpu hps-modern-cpu modern-cpu groups-modern-cpu install clean

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

# README's results tables, generated from the committed metrics and reports (never typed by hand).
readme: $(BIN)/.installed
	$(BIN)/python -m mtlbench.readme README.md  # and docs/*.md

# Study runs outside the pipeline (python -m mtlbench.study_run, docs/units-and-ray.md): each in its own
# .scratch/<name>/ (interrupted, the same target resumes there with the code it started with, finished
# units kept) and writes bench/<name>/; `make readme` then puts it in the README and docs. The modern runs
# train one thread per unit, two units at a time on a local Ray instance; their seeds were chosen by power
# (`python -m mtlbench.power`, docs/verdicts.md). Times: 2 AMD EPYC cores (docs/protocols.md, docs/methods.md).
STUDY_RUN = PATH="$(CURDIR)/$(BIN):$$PATH" OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m mtlbench.study_run --set mlflow.log_models=false
ON_RAY = OMP_NUM_THREADS=1 $(STUDY_RUN) --set run.executor=ray
# the seeds of several study runs of one study, as one answer (docs/units-and-ray.md)
POOL = $(BIN)/python -m mtlbench.pool
# A part's folder is named after its seeds (..._seeds6-8), and one pattern rule per study trains it:
# $(call part_seeds,6-8) is [6,7,8]. Adding seeds is adding a folder name to the study's *_PARTS.
part_seeds = [$(shell seq -s, $(subst -, ,$(1)))]

# Every multitask method on mnist_fashion_hps, keras-faithful, 3000 rows, 3 seeds (~1 hour).
hps-cpu: $(BIN)/.installed
	$(STUDY_RUN) --study mnist_fashion_hps --set run.train_limit=3000 --scratch .scratch/hps-cpu --out bench/mnist_fashion_hps_cpu

# Every multitask method on mnist_fashion_hps under modern, 3000 rows, 21 seeds: study runs of seeds 0-5
# (~1.5 hours), then 3 seeds a part (~45-60 min each), each committed as it finished, pooled by
# mtlbench.pool; 21 is where power's smallest detectable difference reached 0.5 pt on every task
# (docs/methods.md). A part whose details.json exists is not rerun. Parts of later code pool with the
# first ones because `python -m mtlbench.recheck` recorded that that code gives their numbers
# (bench/parts/*/code_checks.json; done for 7ca5b59c..., the code of seeds 12-20).
HPS_MODERN = --study mnist_fashion_hps --set run.protocol=modern --set run.train_limit=3000
HPS_PARTS = bench/parts/mnist_fashion_hps_modern_cpu_seeds0-5 bench/parts/mnist_fashion_hps_modern_cpu_seeds6-8 \
	bench/parts/mnist_fashion_hps_modern_cpu_seeds9-11 bench/parts/mnist_fashion_hps_modern_cpu_seeds12-14 \
	bench/parts/mnist_fashion_hps_modern_cpu_seeds15-17 bench/parts/mnist_fashion_hps_modern_cpu_seeds18-20
bench/parts/mnist_fashion_hps_modern_cpu_seeds%/details.json: | $(BIN)/.installed
	$(ON_RAY) $(HPS_MODERN) --set 'run.seeds=$(call part_seeds,$*)' --scratch .scratch/hps-modern-$* --out $(@D)
hps-modern-cpu: $(addsuffix /details.json,$(HPS_PARTS))
	$(POOL) $(HPS_PARTS) --out bench/mnist_fashion_hps_modern_cpu

# mnist_fashion_mlp under modern, full training sets, 7 seeds (~2.5 hours).
modern-cpu: $(BIN)/.installed
	$(ON_RAY) --study mnist_fashion_mlp --set run.protocol=modern --set 'run.seeds=[0,1,2,3,4,5,6]' \
		--scratch .scratch/modern-7seeds --out bench/mnist_fashion_mlp_modern_cpu

# fashion_groups (three binary Fashion tasks) under modern, 3000 rows, 17 seeds (what its warm task asks
# for by power): study runs of seeds 0-5 (~25 min) and 6-16 (~45 min), pooled as above.
GROUPS_MODERN = --study fashion_groups --set run.protocol=modern --set run.train_limit=3000
GROUPS_PARTS = bench/parts/fashion_groups_modern_cpu_seeds0-5 bench/parts/fashion_groups_modern_cpu_seeds6-16
bench/parts/fashion_groups_modern_cpu_seeds%/details.json: | $(BIN)/.installed
	$(ON_RAY) $(GROUPS_MODERN) --set 'run.seeds=$(call part_seeds,$*)' --scratch .scratch/groups-modern-$* --out $(@D)
groups-modern-cpu: $(addsuffix /details.json,$(GROUPS_PARTS))
	$(POOL) $(GROUPS_PARTS) --out bench/fashion_groups_modern_cpu

# Experiments side by side, narrow: the params each experiment changed beside the metrics that moved
# (each variant's paired gain per task, delta-m); dependency hashes and CI half-widths left out
# (DVC matches --drop from a column name's start: hence the .*).
exp: $(BIN)/.installed
	$(BIN)/dvc exp show --no-pager --only-changed --drop '^(src/|data/|results/|reports/|tasks$$|params\.yaml$$)|.*_ci$$|.*\.p$$'

# The MLflow UI on this machine only; open the printed link (parent runs side by side, charts).
ui: $(BIN)/.installed
	@echo "compare dedicated and multitask: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&compareRunsMode=CHART&searchFilter=tags.%60mtlbench.role%60%20%3D%20%27parent%27"
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000

clean:
	rm -rf results data/prepared .pytest_cache
