# invbench: `make run` sets up .venv and runs the default benchmark on digits;
# `make test` sets up .venv (if needed) and runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,mnist,warfarin,dp,ray,browser
# test processes (pytest-xdist; a test file stays in one process, so its fixtures build once)
TEST_WORKERS ?= 2

.PHONY: run test lint bench clean-cache

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel; a later unpinned resolve then keeps it.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/invbench run

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/miface_speed.py
	$(BIN)/python benchmarks/tabular_tradeoff.py

clean-cache:
	rm -rf .invbench-cache runs
