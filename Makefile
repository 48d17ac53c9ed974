# torch-npu-rs: `make demo` runs the quickstart, `make test` runs every test.
# Both create .venv with torch and the build tools on first use and rebuild only what changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(abspath $(VENV))/bin/python
DEPS := $(VENV)/.deps-installed
# The extension must be compiled against the torch in .venv.
BUILD_ENV := VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH PYO3_PYTHON=$(PY)

.PHONY: all build demo test test-rust test-python bench bench-quick conformance clean

all: build

$(DEPS): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

build: $(DEPS)
	$(BUILD_ENV) maturin develop --release -q

demo: build
	$(PY) examples/quickstart.py

# A fixed proptest seed keeps CI reproducible; unset it (make test-rust PROPTEST_RNG_SEED=)
# to explore new cases.
PROPTEST_RNG_SEED ?= 20261124
test-rust:
	PROPTEST_RNG_SEED=$(PROPTEST_RNG_SEED) cargo test --release -p npu-runtime -p npu-kernels

test-python: build
	$(PY) -m pytest -q tests

test: build test-rust test-python

# Side-by-side timings against PyTorch CPU; writes bench/results.json and bench/results.md.
bench: build
	$(PY) bench/run.py

bench-quick: build
	$(PY) bench/run.py --quick

# PyTorch's OpInfo database on the npu against CPU, fallback disabled; writes
# conformance/report.json and prints the totals.
conformance: build
	$(PY) conformance/run.py

clean:
	rm -rf target $(VENV)
