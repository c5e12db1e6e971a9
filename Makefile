# perturbkit: every target is a thin call of the CLI (python -m perturbkit ...).
# Every user variable is a `?=` line with a `#>` line above it: `make help` lists them from here.
#> Python that creates the virtual environment
PYTHON ?= python3
#> the virtual environment
VENV ?= .venv
PY := $(VENV)/bin/python
#> model of cv and tune (python -m perturbkit models lists them)
MODEL ?= transformer
#> demo (the default demo world), demo:VARIANT (python -m perturbkit demo --list) or a Kaggle-layout directory
DATA ?= demo
#> genes of the demo world (first try: make cv MODEL=transfer_ridge GENES=500); empty: all 18,211, agreement: AGREEMENT_GENES
GENES ?=
#> genes per demo world of make agreement when GENES is empty
AGREEMENT_GENES ?= 2000
#> root of the run store
OOF ?= oof/
#> root of the submission sets: recipe/ (make recipe) and blend/ (make blend), each blend.csv|h5ad|json
SUBMISSIONS ?= submissions/
#> config overrides, e.g. SET="cv.seed=1" (MODEL=transfer_ridge: SET="params.n_components=64 cv.seed=1")
SET ?=
#> the recipe of make recipe (and of make kernel when given)
RECIPE ?= configs/recipe.toml
#> models of make agreement, comma-separated (empty: all registered)
MODELS_STUDY ?=
#> the CPU torch build make install pins
TORCH_VERSION ?= 2.13.0
#> file of make score, make check and make submit
FILE ?=
#> rows make score scores: all, public or private (Kaggle's leaderboard split; a demo world's own)
ROWS ?= all
#> truth file of make score and make runs, or demo / demo:NAME (make score when empty: the demo world's test_truth.parquet)
TRUTH ?=
#> Kaggle username of kernel builds
KAGGLE_USER ?= $(KAGGLE_USERNAME)
#> where make data downloads the competition files
KAGGLE_DATA ?= data/kaggle
#> root of the kernel folders
KERNELS ?= kernels
#> the kernel's slug
SLUG ?= perturbkit-submission
#> models of make kernel without RECIPE or BLEND
MODELS ?= $(MODEL)
#> a blend JSON for make kernel
BLEND ?=
#> the wheels dataset of make kernel, <user>/<slug>
DEPS ?=
#> slug of the wheels dataset make kernel-deps writes
DEPS_SLUG ?= perturbkit-deps
#> message of make submit
MSG ?= perturbkit kernel $(SLUG)
#> Optuna trials of make tune
TRIALS ?= 20
#> worker processes of make tune
WORKERS ?= 1
#> SQLAlchemy URL of the tuning study (empty: sqlite:///<OOF>/tune.db)
STORAGE ?=
#> tuning study name (empty: the model's name)
STUDY ?=
#> runs per measurement of make bench and make bench-first (the median is reported)
BENCH_RUNS ?= 3

GENES_AGREEMENT := $(or $(GENES),$(AGREEMENT_GENES))
SET_ARGS := $(foreach s,$(SET),--set '$(s)')
GENES_ARGS := $(if $(GENES),--demo-genes $(GENES))
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install cv recipe agreement public-split tune runs test test-all mutate bench bench-first demo validate score check clean data kernel kernel-deps push probes probe-scores submit blend report

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@echo "variables (make TARGET NAME=value; default after =):"
	@awk '/^#> / {about = substr($$0, 4); next} /^[A-Z_]+ \?=/ {name = $$1; sub(/^[A-Z_]+ \?= ?/, ""); printf "  %-16s = %-26s %s\n", name, $$0, about} {about = ""}' $(firstword $(MAKEFILE_LIST))

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so pip never resolves a bare torch (the CUDA build) on CPU machines
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install perturbkit with its dev extras

cv: $(STAMP) ## cross-validate MODEL on DATA, store the run under OOF (SET="cv.seed=1 ...")
	$(PY) -m perturbkit cv --model $(MODEL) --data $(DATA) $(GENES_ARGS) --oof $(OOF) $(SET_ARGS)

recipe: $(STAMP) ## cross-validate RECIPE's members on DATA (stored runs reused), blend, write SUBMISSIONS/recipe/blend.csv|h5ad|json
	$(PY) -m perturbkit recipe --recipe $(RECIPE) --data $(DATA) $(GENES_ARGS) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS)

agreement: $(STAMP) ## CV vs hidden-test agreement of every scheme on every demo variant (AGREEMENT_GENES genes), with RECIPE's blend: reports/agreement/
	$(PY) -m perturbkit agreement --demo-genes $(GENES_AGREEMENT) --recipe $(RECIPE) --oof $(OOF)/agreement --out reports/agreement $(if $(MODELS_STUDY),--models $(MODELS_STUDY))

results: $(STAMP) ## docs/results.md: the agreement study under RECIPE's scheme on every demo variant (GENES genes, default all 18,211; MODELS_STUDY models, default all)
	$(PY) -m perturbkit results --recipe $(RECIPE) --oof $(OOF)/agreement $(GENES_ARGS) $(if $(MODELS_STUDY),--models $(MODELS_STUDY))

public-split: $(STAMP) ## on every demo variant (AGREEMENT_GENES genes): Kaggle's public rows vs random ones as predictors of the private score and the leaderboard factor
	$(PY) -m perturbkit public-split --demo-genes $(GENES_AGREEMENT) --oof $(OOF)/agreement --out reports/public_split/public_split.csv $(if $(MODELS_STUDY),--models $(MODELS_STUDY))

tune: $(STAMP) ## tune MODEL's [tune] space: TRIALS trials by WORKERS processes in one Optuna study (STORAGE, STUDY), write configs/tuned/MODEL.toml
	$(PY) -m perturbkit tune --model $(MODEL) --data $(DATA) $(GENES_ARGS) --oof $(OOF) --trials $(TRIALS) --workers $(WORKERS) $(if $(STORAGE),--storage $(STORAGE)) $(if $(STUDY),--study $(STUDY)) $(SET_ARGS)

runs: $(STAMP) ## list the runs stored under OOF with their scores (TRUTH=...: and every test score against that truth file, or TRUTH=demo)
	$(PY) -m perturbkit runs --oof $(OOF) $(if $(TRUTH),--truth $(TRUTH) $(GENES_ARGS))

test: $(STAMP) ## run the test suite (small demo worlds, no slow tests)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP) ## run every test, the slow ones too
	$(PY) -m pytest -q

mutate: $(STAMP) ## apply each guarded mutation (tests/mutations) to a copy of the tree; fails if a test misses one
	$(PY) tests/mutations/run.py

bench: $(STAMP) ## measure the first result, then load, CV and memory at full scale; write BENCHMARKS.md (medians of BENCH_RUNS runs)
	$(PY) benchmarks/run.py --output BENCHMARKS.md --repeats $(BENCH_RUNS)

bench-first: $(STAMP) ## measure `make cv MODEL=transfer_ridge GENES=500` from an empty demo cache; replace its section of BENCHMARKS.md
	$(PY) benchmarks/run.py --output BENCHMARKS.md --repeats $(BENCH_RUNS) --only bench_first

demo: $(STAMP) ## generate the demo world of GENES genes (default all; cached under data/demo/), print its folder
	$(PY) -m perturbkit demo $(if $(GENES),--genes $(GENES))

validate: $(STAMP) ## load and validate DATA, print what it holds
	$(PY) -m perturbkit validate --data $(DATA) $(GENES_ARGS)

blend: $(STAMP) ## blend the best CV run of each model and config in OOF (on DATA; no tuning trials) into SUBMISSIONS/blend/ (SET="method=slsqp trials=200")
	$(PY) -m perturbkit blend --data $(DATA) $(GENES_ARGS) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS)

report: $(STAMP) ## write reports/<set>/ (PNGs, index.html, index.md) for SUBMISSIONS/recipe/blend.json (else SUBMISSIONS/blend/blend.json)
	$(PY) -m perturbkit report --submissions $(SUBMISSIONS)

score: $(STAMP) ## score FILE against TRUTH (default: the hidden test truth of the demo world of GENES genes) on ROWS
	@test -n "$(FILE)" || { echo "make score needs FILE=<submission .csv, .parquet or .h5ad>, e.g. make score FILE=submissions/recipe/blend.csv" >&2; exit 2; }
	$(PY) -m perturbkit score $(FILE) --truth $(or $(TRUTH),demo) $(GENES_ARGS) --rows $(ROWS)

check: $(STAMP) ## check FILE offline as Kaggle would (ids, columns and their order, finite values) against DATA when given here, else the competition's layout
	@test -n "$(FILE)" || { echo "make check needs FILE=<submission .csv>, e.g. make check FILE=submissions/recipe/blend.csv DATA=data/kaggle" >&2; exit 2; }
	$(PY) -m perturbkit check $(FILE) $(if $(filter command line,$(origin DATA)),--data $(DATA) $(GENES_ARGS))

data: $(STAMP) ## download the competition data with the Kaggle client into KAGGLE_DATA, validate it (needs credentials)
	$(PY) -m perturbkit data download --out $(KAGGLE_DATA)

kernel-deps: $(STAMP) ## download the wheels the Kaggle image lacks (rdkit) into KERNELS/DEPS_SLUG/ as a dataset folder
	$(PY) -m perturbkit kernel deps --slug $(DEPS_SLUG) --kernels $(KERNELS) $(if $(KAGGLE_USER),--user $(KAGGLE_USER))

# `make kernel RECIPE=configs/recipe.toml`: run the recipe (stored runs reused), then build from its blend.
KERNEL_RECIPE := $(if $(filter command line,$(origin RECIPE)),$(RECIPE))
KERNEL_BLEND := $(if $(KERNEL_RECIPE),$(SUBMISSIONS)/recipe/blend.json,$(BLEND))

kernel: $(STAMP) ## build KERNELS/SLUG/: one offline script running RECIPE (given here, with DATA), BLEND (a blend JSON) or MODELS; DEPS=<user>/<wheels dataset>
	$(if $(and $(KERNEL_RECIPE),$(filter default file,$(origin DATA))),@echo "make kernel RECIPE=$(RECIPE) runs the recipe first and needs its data: make kernel RECIPE=$(RECIPE) DATA=$(KAGGLE_DATA) (or DATA=demo GENES=300 to build from a demo world on purpose)" >&2; exit 2)
	$(if $(KERNEL_RECIPE),$(PY) -m perturbkit recipe --recipe $(KERNEL_RECIPE) --data $(DATA) $(GENES_ARGS) --oof $(OOF) --submissions $(SUBMISSIONS) $(SET_ARGS))
	$(PY) -m perturbkit kernel build --slug $(SLUG) --kernels $(KERNELS) $(if $(KAGGLE_USER),--user $(KAGGLE_USER)) $(if $(KERNEL_BLEND),--blend $(KERNEL_BLEND),$(foreach m,$(MODELS),--model $(m)) $(SET_ARGS)) $(if $(DEPS),--deps-dataset $(DEPS))

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
