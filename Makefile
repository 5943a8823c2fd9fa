# README's two set-up commands, on a fresh clone with python3 and make:
#   make demo    installs the package into .venv and runs the demo (offline, about ten seconds)
#   make test    installs the test extras into .venv, checks the code with ruff and runs the tests
# torch's CPU wheel goes in first, so that nothing pulls a multi-GB CUDA build; for a CUDA build
# give its requirement, e.g. `make test TORCH=torch`. VENV picks another environment folder.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: demo test lint

demo: $(VENV)/.installed
	$(BIN)/medseg-eval demo

# The tests run in one process per core (pytest-xdist), each file's tests in one process, torch on one
# thread per process; `python -m pytest` alone runs them in this process.
test: $(VENV)/.installed-test lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check medseg_eval tests benchmarks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@
