# khop: the two commands are `make demo` and `make test`.
# Both create .venv from PyPI when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.khop-installed
JOBS   ?= 2

.PHONY: demo test test-slow test-synth cosim-full lint bench bench-cosim clean distclean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "khop needs Python >= 3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/khop demo --out build/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow and not synth"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "slow and not synth"

test-synth: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "synth"

# The full cosimulation of the ridge network: 300 noisy queries at 20 % noise, 2-bit, 16 lanes.
cosim-full: $(STAMP)
	$(BIN)/python -m pytest tests/sim -m slow -k ridge -v -s -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/khop bench

# Simulated clock cycles per wall-clock second of the ridge cosimulation (Verilator; Icarus too
# when installed).
bench-cosim: $(STAMP)
	$(BIN)/python -m sim.bench

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV)
