# Two commands a newcomer needs: `make tune` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TUNE_BUDGET ?= 15

.PHONY: tune test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## Tune the embedded SQLite default for a short budget and print default vs best.
tune: install
	$(BIN)/autosys tune sqlite --budget $(TUNE_BUDGET) --json studies/last-tune.json

## Run the test suite (optional adapters skip with a reason when their extras are absent).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) studies .pytest_cache
