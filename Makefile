# Hygeia developer commands. Every target sets up .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run sim test lint typecheck soak bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

TESTNET := .hygeia/testnet

# a local 4-validator network, one process per node, in the foreground
run: venv
	test -f $(TESTNET)/testnet.json || $(BIN)/hygeia testnet init --validators 4 --out $(TESTNET)
	$(BIN)/hygeia testnet start --dir $(TESTNET)

# the default cluster simulation (deterministic, virtual time)
sim: venv
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
