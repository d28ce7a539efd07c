# Hygeia developer commands. Every target sets up .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run sim test lint typecheck soak chaos bench clean

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

# unit, sim and integration tests on both cores; then the functional tests
# (real node processes, timing-sensitive) alone, so they never share the CPU
test: lint typecheck
	$(BIN)/pytest -q -n 2 --ignore=tests/functional
	$(BIN)/pytest -q tests/functional

# every scenario over 1,000 seeds, then 10,000 generated scenarios (failures are
# written to out/sim-fuzz with the command that replays them)
SOAK_SEEDS ?= 1000
FUZZ_COUNT ?= 10000
soak: venv
	HYGEIA_SIM_SEEDS=$(SOAK_SEEDS) $(BIN)/pytest -q -n 2 -m soak tests/sim -k 'not fuzz_soak'
	$(BIN)/hygeia sim fuzz --seed 0 --count $(FUZZ_COUNT) --jobs 2 --out out/sim-fuzz
	$(BIN)/pytest -q -s -m soak tests/integration/test_api_fuzz.py

# the real-process fault suite (docs/faults.md): each fault kind alone (tests marked
# `chaos`), then CHAOS_MINUTES of random faults from CHAOS_SEED (default: a random
# seed, printed) on each of CHAOS_NODES validator counts; output in out/chaos/.
# Repeat a run: make chaos CHAOS_SEED=<the printed seed>
CHAOS_MINUTES ?= 30
CHAOS_NODES ?= 4 7
CHAOS_SEED ?=
chaos: venv
	$(BIN)/pytest -q -m chaos tests/functional
	$(BIN)/python -m tests.chaos.run --minutes $(CHAOS_MINUTES) --nodes $(CHAOS_NODES) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED),)

# the simulator bench, then on fresh 4-validator local testnets the closed-loop
# (maximum throughput) and open-loop (BENCH_RATE tx/s) load benches; JSON in out/bench/
# (summary.json: medians over BENCH_RUNS runs), each with BENCH_VALIDATORS validators; and
# state sync against block replay on a chain of BENCH_SYNC_TXS transactions (0: skip),
# the longest pause in commits while a validator is voted out under load, and document
# publish and fetch (10 KiB and 5 MiB) between two nodes.
# Quick run: make bench BENCH_SECONDS=10 BENCH_SYNC_TXS=20000
BENCH_SECONDS ?= 60
BENCH_WARMUP ?= 5
BENCH_RUNS ?= 1
BENCH_RATE ?= 500
BENCH_CONCURRENCY ?= 500
BENCH_VALIDATORS ?= 4,7
BENCH_SYNC_TXS ?= 1000000
BENCH_ARGS ?=
bench: venv
	$(BIN)/python -m node.bench.run_all --seconds $(BENCH_SECONDS) --warmup $(BENCH_WARMUP) \
		--runs $(BENCH_RUNS) --rate $(BENCH_RATE) --concurrency $(BENCH_CONCURRENCY) \
		--validators $(BENCH_VALIDATORS) --state-sync-txs $(BENCH_SYNC_TXS) --epoch-switch \
		--documents --out out/bench $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
