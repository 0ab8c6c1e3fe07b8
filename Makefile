# The two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := data/demo
# demo-scale search: the paper's space shrunk (filters, dense units, batch sizes), a few trials
DEMO_TUNE := -P max_trials=6 -P epochs=20 -P patience=5 \
	-P "search=filters=[8,32];dense_units=[128,256];dense_layers=[1,2];batch_sizes=[16,32]"
# demo-scale training of each search's best network
DEMO_TRAIN := -P epochs=40 -P patience=8
# demo-scale evaluation: 20 nearby galaxies for the redshift suite; the demo networks agree with
# the conventional A only to ~0.05 and C to ~0.3 (the paper's 0.01 selects almost nothing here)
DEMO_EVAL := redshift.n_galaxies=20;noise.max_delta_a=0.05;noise.max_delta_c=0.3;real.views=1

.PHONY: install demo science test lint docs docs-serve bench profile ui clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the data pipeline at demo scale (dvc repro: simulate -> clean -> measure -> select ->
## split -> augment), its metrics and figures; C and A of FITS stamps from the CLI; then a small
## Bayesian search per network, every trial an MLflow run (mlflow run . -e tune); training and
## registration of each best network (mlflow run . -e train); a catalogue of FITS stamps scored by
## the champion (casnet predict); the champion evaluated on the test, noise and redshift suites
## (mlflow run . -e evaluate), with the summary table printed
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show
	@echo "figures: $$(ls plots/*.png | tr '\n' ' ')"
	$(BIN)/casnet show data/selected --sort label_asymmetry --n 16 --out plots/grid_selected.png
	$(BIN)/casnet stamps --n 12 --out $(DEMO)/stamps
	$(BIN)/casnet measure $(DEMO)/stamps
	@# casnet's experiments (descriptions, artifacts in mlartifacts/) before the launchers of
	@# `mlflow run --experiment-name` would create them bare (issue 31: launchers sat in Default)
	$(BIN)/python -c "from casnet.core.tracking import ensure_experiments; ensure_experiments()"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e tune -P target=asymmetry $(DEMO_TUNE) \
	    --env-manager local --experiment-name casnet-tune --run-name "mlflow run -e tune (asymmetry)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e tune -P target=concentration \
	    $(DEMO_TUNE) --env-manager local --experiment-name casnet-tune \
	    --run-name "mlflow run -e tune (concentration)"
	@echo "trials: experiment casnet-tune in the MLflow UI (make ui, then http://127.0.0.1:5000)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e train -P target=asymmetry \
	    -P from_tune=best $(DEMO_TRAIN) --env-manager local --experiment-name casnet-train \
	    --run-name "mlflow run -e train (asymmetry)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e train -P target=concentration \
	    -P from_tune=best $(DEMO_TRAIN) --env-manager local --experiment-name casnet-train \
	    --run-name "mlflow run -e train (concentration)"
	$(BIN)/casnet predict $(DEMO)/stamps --model models:/casnet@champion \
	    --out $(DEMO)/catalog.csv --with-conventional --quiet
	@echo "catalogue: $(DEMO)/catalog.csv"; head -5 $(DEMO)/catalog.csv | cut -c1-160
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -e evaluate -P suite=all \
	    -P "set=$(DEMO_EVAL)" --env-manager local --experiment-name casnet-evaluate \
	    --run-name "mlflow run -e evaluate (all suites)"
	@echo "the runs in the MLflow UI (make ui):"; $(BIN)/casnet links

## science: the science run (issue 17; ~2 h on 2 cores, in science/, report in reports/science/):
## nohup make science > science.log 2>&1 &  (tail -f science/science.log); rerun to continue
science: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/casnet science

## test: lint, format check and the test suite
test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

## docs: the documentation into site/ (MkDocs, strict: a warning is an error; the tests build it too)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

## bench: every speed figure in one run (~12 min): benchmarks/results.json, MLflow casnet-benchmark
bench: $(STAMP)
	$(BIN)/casnet benchmark all

## profile: where the time goes (pyinstrument, ~1 min): benchmarks/profiles/
profile: $(STAMP)
	$(BIN)/casnet benchmark profile

## ui: the MLflow UI on the project's store
ui: $(STAMP)
	-@$(BIN)/casnet links
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	    --default-artifact-root $(CURDIR)/mlartifacts

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .tuning site
