# chattune — `make demo` and `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is installed first and pinned: an unpinned torch (or one pulled in by another
# package) would be a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup assets demo test test-all lint clean

setup: $(STAMP) assets

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

assets: $(STAMP)
	$(BIN)/chattune assets fetch

demo: setup
	$(BIN)/chattune demo

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .chattune .pytest_cache
