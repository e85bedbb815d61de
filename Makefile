# chattune — `make demo` and `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := $(VENV)/.installed-extras
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)
# torch is installed first and pinned: an unpinned torch (or one pulled in by another
# package) would be a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup assets demo test test-all postgres-server browser vllm lint clean bench bench-full bench-gpu

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

# Two test processes: most tests wait on subprocesses (jobs, servers), so two share the
# cores well; `make test-all` stays serial (its servers are heavier).
test: setup
	$(BIN)/python -m pytest -q -n 2

# The engines the scale-out tests drive: PostgreSQL (Debian's server package, started by the
# tests on a free port) and the Python extras that talk to them.
$(EXTRAS): $(STAMP)
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,postgres,ray,deepspeed]"
	touch $(EXTRAS)

postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing Debian's postgresql for the PostgreSQL tests"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends postgresql; \
	fi

# The studio's browser tests: Debian's chromium (Playwright's own browser download is not
# needed) and the Playwright Python package.
BROWSER_STAMP := $(VENV)/.installed-browser
browser: $(BROWSER_STAMP)
	@if ! command -v chromium >/dev/null; then \
	  echo "installing Debian's chromium for the studio's browser tests"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends chromium; \
	fi

$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,browser]"
	touch $(BROWSER_STAMP)

# vLLM (CPU build) in a virtual environment of its own (its torch/transformers pins differ).
vllm: $(STAMP)
	$(BIN)/chattune engines install vllm

test-all: setup $(EXTRAS) postgres-server browser vllm
	$(BIN)/python -m pytest -q -m ""

# Benchmarks (docs/benchmarks.md): TRL comes from the bench extra only.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	touch $(BENCH_STAMP)

# Every benchmark at a size that finishes in minutes (vllm_gateway.py needs `make vllm`).
bench: $(BENCH_STAMP) assets
	$(BIN)/python benchmarks/train_vs_trl.py --quick
	$(BIN)/python benchmarks/train_vs_trl.py --scaling --quick
	$(BIN)/python benchmarks/chunked_loss.py
	$(BIN)/python benchmarks/packing_throughput.py --rows 32
	$(BIN)/python benchmarks/bf16_cpu.py --steps 3 --max-len 256
	$(BIN)/python benchmarks/data_prep.py --rows 2000 --huge-mb 5
	$(BIN)/python benchmarks/registry_disk.py
	$(BIN)/python benchmarks/serving_throughput.py --one-at-a-time 2

bench-full: $(BENCH_STAMP) assets vllm
	$(BIN)/python benchmarks/train_vs_trl.py --full
	$(BIN)/python benchmarks/train_vs_trl.py --scaling --full
	$(BIN)/python benchmarks/chunked_loss.py --repeats 5
	$(BIN)/python benchmarks/packing_throughput.py
	$(BIN)/python benchmarks/bf16_cpu.py
	$(BIN)/python benchmarks/data_prep.py
	$(BIN)/python benchmarks/registry_disk.py
	$(BIN)/python benchmarks/serving_throughput.py --repeats 5
	$(BIN)/python benchmarks/vllm_gateway.py

bench-gpu: $(BENCH_STAMP) assets
	$(BIN)/python benchmarks/train_vs_trl_gpu.py

# ruff, then mypy over src/ ([tool.mypy] in pyproject.toml; .mypy_cache makes reruns fast).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .chattune .pytest_cache
