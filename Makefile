# modelfleet: every target is one documented command (see README.md). No logic hides here.
# The virtual environment is (re)installed when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# llama.cpp built for any x86-64 with AVX2 (requirements-llm.txt says why not native).
LLM_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install up down status test lint bench fuzz clean

$(STAMP): pyproject.toml requirements-nodeps.txt requirements-dev-nodeps.txt requirements-llm.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,train,dev]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-dev-nodeps.txt
	CMAKE_ARGS="$(LLM_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-deps -r requirements-llm.txt
	touch $(STAMP)

install: $(STAMP)      ## create .venv and install modelfleet with every extra

up: $(STAMP)           ## build the models, start the whole stack in the foreground (Ctrl-C stops it)
	scripts/ensure-tools monitoring
	$(BIN)/modelfleet up

down: $(STAMP)         ## stop a stack started with `modelfleet up --detach`
	$(BIN)/modelfleet down

status: $(STAMP)       ## each component: URL, pid, ready
	$(BIN)/modelfleet status

test: $(STAMP)         ## unit, integration (real Postgres, NATS, Triton) and chart tests
	scripts/ensure-tools
	$(BIN)/python -m pytest

lint: $(STAMP)         ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fuzz: $(STAMP)         ## schemathesis against every service's OpenAPI in jwt mode, 20x the cases of make test
	MODELFLEET_FUZZ_EXAMPLES=500 $(BIN)/python -m pytest tests/integration/test_schemathesis.py --timeout 7200

bench: $(STAMP)        ## benchmarks; prints ratios and rewrites bench/RESULTS.md
	$(BIN)/modelfleet bench

clean:                 ## remove local state (.modelfleet) but keep .venv
	rm -rf .modelfleet
