# est-fairchem: one-step install, demo and tests.
#   make demo   - create .venv, install everything, run the EST-EquiformerV2 demo on made data
#   make test   - create .venv if needed and run the whole test suite (what CI runs)
#   make test-fast - the same without the end-to-end runs of the real fairchem command, the
#                    paper-size model builds and the benchmark scripts (-m 'not e2e and not slow')
# torch-scatter/torch-sparse: PyG's prebuilt wheels for the installed torch and its CUDA build
# when pip can get them, else compiled from source (about 28 of the 33 minutes of a fresh install
# here); one line says which was done and why (scripts/pyg_wheel_index.py):
#   make install                      - PYG_WHEELS=auto: the wheels, or compile without them
#   make install PYG_WHEELS=<url>     - a given index, e.g. https://data.pyg.org/whl/torch-2.4.0+cu121.html
#   make install PYG_WHEELS=source    - compile without trying the wheels

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.est-fairchem-installed
PYG_WHEELS ?= auto
PYTEST_ARGS ?=

.PHONY: install demo test test-fast clean-demo peers

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	# torch first: torch-scatter and torch-sparse (imported by fairchem 1.x at start-up) build against it
	$(BIN)/python -m pip install "torch~=2.4.0" "numpy>=1.26,<2" ninja
	$(BIN)/python scripts/pyg_wheel_index.py --install "$(strip $(PYG_WHEELS))"
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/est-fairchem demo

# One pytest worker per core (pytest-xdist; scripts/test_workers.py: the cores this process may
# use, 3 GiB of memory each), each test file whole on one worker so that its module fixtures
# (made data, a demo run) are built once, in the order tests/conftest.py gives (the longest
# first; pytest-xdist would otherwise order the files by their number of tests); one thread per
# worker and per fairchem process it starts, so that the workers do not fight over the cores.
# `make test TEST_WORKERS=1`: one.
TEST_WORKERS ?= $(shell $(PYTHON) scripts/test_workers.py)
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) \
	--dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not e2e and not slow" $(PYTEST_ARGS)

clean-demo:
	rm -rf runs/demo data/demo

# Benchmarks only: EquiformerV3 (arXiv 2604.09130), the peer model of the comparison study
# (configs/qm9/compare/eqv3.yml), from its PyPI wheel WITHOUT its declared dependencies, which
# pin torch 2.9.1 and CUDA builds of PyG; it runs on this environment's torch. Never a
# dependency of the package (benchmarks/README.md).
peers: $(STAMP)
	$(BIN)/python -m pip install --no-deps "equiformer-v3==0.0.3"
