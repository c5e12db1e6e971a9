# perturbkit: every target is a thin call of the CLI (python -m perturbkit ...).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= transformer
# demo (the default demo world), demo:VARIANT (list: python -m perturbkit demo --list) or a Kaggle-layout directory
DATA ?= demo
OOF ?= oof/
SUBMISSIONS ?= submissions/
SET ?=
RECIPE ?= configs/recipe.toml
GENES ?= 2000
MODELS_STUDY ?=
TORCH_VERSION ?= 2.13.0
# Kaggle: make data | kernel-deps | kernel | push | submit (see `make help`)
KAGGLE_USER ?= $(KAGGLE_USERNAME)
KAGGLE_DATA ?= data/kaggle
KERNELS ?= kernels
SLUG ?= perturbkit-submission
MODELS ?= $(MODEL)
BLEND ?=
DEPS ?=
DEPS_SLUG ?= perturbkit-deps
MSG ?= perturbkit kernel $(SLUG)
# Tuning: make tune MODEL=pca_ridge TRIALS=20 WORKERS=2 (STORAGE: a SQLAlchemy URL; default sqlite:///<OOF>/tune.db)
TRIALS ?= 20
WORKERS ?= 1
STORAGE ?=
STUDY ?=

SET_ARGS := $(foreach s,$(SET),--set $(s))
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install cv recipe agreement tune runs test test-all mutate bench demo validate score clean data kernel kernel-deps push probes probe-scores submit blend report

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@echo "variables: MODEL=$(MODEL) DATA=$(DATA) OOF=$(OOF) SUBMISSIONS=$(SUBMISSIONS) SET='$(SET)'"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so pip never resolves a bare torch (the CUDA build) on CPU machines
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install perturbkit with its dev extras

cv: $(STAMP) ## cross-validate MODEL on DATA, store the run under OOF (SET="params.alpha=3 ...")
	$(PY) -m perturbkit cv --model $(MODEL) --data $(DATA) --oof $(OOF) $(SET_ARGS)

recipe: $(STAMP) ## cross-validate RECIPE's members on DATA (stored runs reused), blend, write SUBMISSIONS/blend.csv|h5ad|json
	$(PY) -m perturbkit recipe --config $(RECIPE) --data $(DATA) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS)

agreement: $(STAMP) ## CV vs hidden-test agreement of every scheme on every demo variant (GENES genes), with RECIPE's blend: reports/agreement/
	$(PY) -m perturbkit agreement --demo-genes $(GENES) --recipe $(RECIPE) --oof $(OOF)/agreement --out reports/agreement $(if $(MODELS_STUDY),--models $(MODELS_STUDY))

tune: $(STAMP) ## tune MODEL's [tune] space: TRIALS trials by WORKERS processes in one Optuna study (STORAGE, STUDY), write configs/tuned/MODEL.toml
	$(PY) -m perturbkit tune --model $(MODEL) --data $(DATA) --oof $(OOF) --trials $(TRIALS) --workers $(WORKERS) $(if $(STORAGE),--storage $(STORAGE)) $(if $(STUDY),--study $(STUDY)) $(SET_ARGS)

runs: $(STAMP) ## list the runs stored under OOF with their scores
	$(PY) -m perturbkit runs --oof $(OOF)

test: $(STAMP) ## run the test suite (small demo worlds, no slow tests)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP) ## run every test, the slow ones too
	$(PY) -m pytest -q

mutate: $(STAMP) ## apply each guarded mutation (tests/mutations) to a copy of the tree; fails if a test misses one
	$(PY) tests/mutations/run.py

bench: $(STAMP) ## measure load, CV and memory at full scale, write BENCHMARKS.md
	$(PY) benchmarks/run.py --output BENCHMARKS.md

demo: $(STAMP) ## generate the full-size demo world (cached under data/demo/)
	$(PY) -m perturbkit demo

validate: $(STAMP) ## load and validate DATA, print what it holds
	$(PY) -m perturbkit validate --data $(DATA)

blend: $(STAMP) ## blend the latest run of each model in OOF (on DATA) into SUBMISSIONS/blend.csv|h5ad|json (SET="method=slsqp trials=200")
	$(PY) -m perturbkit blend --data $(DATA) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS)

report: $(STAMP) ## write reports/blend/ (PNGs, index.html, index.md) for SUBMISSIONS/blend.json
	$(PY) -m perturbkit report --submissions $(SUBMISSIONS)

score: $(STAMP) ## score FILE against TRUTH (default: the demo's hidden test truth)
	@test -n "$(FILE)" || { echo "make score needs FILE=<submission .csv, .parquet or .h5ad>, e.g. make score FILE=submissions/blend.csv" >&2; exit 2; }
	$(PY) -m perturbkit score $(FILE) --truth $(or $(TRUTH),$$($(PY) -m perturbkit demo)/test_truth.parquet)

data: $(STAMP) ## download the competition data with the Kaggle client into KAGGLE_DATA, validate it (needs credentials)
	$(PY) -m perturbkit data download --out $(KAGGLE_DATA)

kernel-deps: $(STAMP) ## download the wheels the Kaggle image lacks (rdkit) into KERNELS/DEPS_SLUG/ as a dataset folder
	$(PY) -m perturbkit kernel deps --slug $(DEPS_SLUG) --kernels $(KERNELS) $(if $(KAGGLE_USER),--user $(KAGGLE_USER))

# `make kernel RECIPE=configs/recipe.toml`: run the recipe (stored runs reused), then build from its blend.
KERNEL_RECIPE := $(if $(filter command line,$(origin RECIPE)),$(RECIPE))
KERNEL_BLEND := $(if $(KERNEL_RECIPE),$(SUBMISSIONS)/blend.json,$(BLEND))

kernel: $(STAMP) ## build KERNELS/SLUG/: one offline script running RECIPE (given here), BLEND (a blend JSON) or MODELS; DEPS=<user>/<wheels dataset>
	$(if $(KERNEL_RECIPE),$(PY) -m perturbkit recipe --config $(KERNEL_RECIPE) --data $(DATA) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS))
	$(PY) -m perturbkit kernel build --slug $(SLUG) --out $(KERNELS) $(if $(KAGGLE_USER),--user $(KAGGLE_USER)) $(if $(KERNEL_BLEND),--blend $(KERNEL_BLEND),$(foreach m,$(MODELS),--model $(m)) $(SET_ARGS)) $(if $(DEPS),--deps-dataset $(DEPS))

push: $(STAMP) ## push KERNELS/SLUG with the Kaggle client, follow its run, download its output to KERNELS/SLUG-output/
	$(PY) -m perturbkit kernel push --dir $(KERNELS)/$(SLUG) --kernels $(KERNELS) --follow --output

probes: $(STAMP) ## submit the recipe's leaderboard probe files (SUBMISSIONS/probes.json lists them) to the competition
	$(PY) -m perturbkit probes submit --submissions $(SUBMISSIONS)

probe-scores: $(STAMP) ## fetch the probes' public scores into SUBMISSIONS/probes.json (then `make recipe` applies the factor)
	$(PY) -m perturbkit probes fetch --submissions $(SUBMISSIONS)

submit: $(STAMP) ## submit FILE (default: KERNELS/SLUG-output/submission.csv) to the competition with message MSG
	$(PY) -m perturbkit submit $(or $(FILE),$(KERNELS)/$(SLUG)-output/submission.csv) -m "$(MSG)"

clean: ## remove the virtual environment, caches and the generated demo data
	rm -rf $(VENV) data/demo .pytest_cache build dist src/*.egg-info
