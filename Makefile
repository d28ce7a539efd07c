# Hygeia developer commands. Every target sets up .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint typecheck unit sim soak bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: venv
	$(BIN)/hygeia sim run configs/scenarios/happy-n4.toml --out out/sim-happy-n4

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

soak: venv
	HYGEIA_SIM_SEEDS=10000 $(BIN)/pytest -q -m soak tests/sim

bench: venv
	$(BIN)/python -m node.bench.sim_bench

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
