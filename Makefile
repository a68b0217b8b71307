# Two commands a newcomer needs: `make tune` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TUNE_BUDGET ?= 15

.PHONY: tune test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Two install stamps, re-made when the project's metadata changes: `make tune` needs only the
# package; `make test` installs the `all` extra (every extra that installs from a wheel: kv, db,
# pagecache, index, compiled, bench, distributed, notebooks, test), so that only tests needing a
# running server, a GPU or a browser skip. The test install covers the base one.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $@ $(VENV)/.installed-base

install: $(VENV)/.installed-base

install-test: $(VENV)/.installed-test

## Tune the embedded SQLite default for a short budget and print default vs best.
## (--warm-start none: every run starts cold, so a second `make tune` repeats the first; the study still joins the knowledge base)
tune: install
	$(BIN)/autosys tune sqlite --budget $(TUNE_BUDGET) --warm-start none --json studies/last-tune.json

## Run the test suite (tests needing a server, a GPU or a browser skip with a reason when there is none).
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) studies .pytest_cache
	# numba's on-disk caches name their module: stale ones (e.g. from before adapters became autosys_adapters) fail to load
	find adapters autosys -name '*.nbi' -delete -o -name '*.nbc' -delete
