# The two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := data/demo

.PHONY: install demo test lint bench ui clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the data pipeline at demo scale (dvc repro: simulate -> clean -> measure -> select ->
## split -> augment), its metrics and figures; then C and A of FITS stamps from the CLI
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show
	@echo "figures: $$(ls plots/*.png | tr '\n' ' ')"
	$(BIN)/casnet show data/selected --sort label_asymmetry --n 16 --out plots/grid_selected.png
	$(BIN)/casnet stamps --n 6 --out $(DEMO)/stamps
	$(BIN)/casnet measure $(DEMO)/stamps

## test: lint, format check and the test suite
test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

## bench: speed and agreement of the conventional measurement vs statmorph
bench: $(STAMP)
	$(BIN)/casnet benchmark measure --n 200

## ui: the MLflow UI on the project's store
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	    --default-artifact-root $(CURDIR)/mlartifacts

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
