"""cocotb testbench of :class:`khop.boards.core.BoardCore` (UART + bridge + accelerator, no PLL or
I/O buffers) driven through its ``rx``/``tx`` pins by the host driver itself.

A UART model (:class:`UartModel`) shifts bytes in and out at the core's divisor; it is the
transport of :class:`khop.boards.host.Device`, which runs in a thread bridged into the simulation
(``cocotb.task.bridge``/``resume``), so the very protocol code that talks to a board over
pyserial is what the hardware answers here. Configuration from :func:`khop.boards.cosim.run_core`
through ``KHOP_BOARD_*`` environment variables.
"""

import json
import os
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from khop.boards.emulator import EmulatedDevice
from khop.boards.fuzz import link_sequence, load_bursts
from khop.boards.host import Device, check_against_model
from khop.boards.protocol import END, Command, FrameDecoder, LinkFormat, encode_frame
from khop.hw.layout import load_words
from khop.model.fixed import unpack_bits
from khop.outputs import atomic_write
from khop.sim.config import load_integer_network

PERIOD_NS = 10


class UartModel:
    """8N1 at ``divisor`` clock cycles per bit on the core's ``rx`` (driven) and ``tx``
    (monitored) pins; ``write``/``read``/``clock`` make it a host-driver transport (from a
    bridged thread) whose deadlines run on simulated time. Bit times are waited with
    ``Timer`` (one callback per bit, not one per clock edge)."""

    def __init__(self, dut, divisor, timeout_cycles):
        self.dut = dut
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.received = deque()
        self.bytes_in = self.bytes_out = 0
        dut.rx.value = 1

    def _cycles(self, count):
        return Timer(count * PERIOD_NS, unit="ns")

    async def send(self, data):
        d = self.divisor
        for byte in bytes(data):
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.dut.rx.value = bit
                await self._cycles(d)
            self.bytes_out += 1

    async def monitor(self):
        d = self.divisor
        while True:
            await FallingEdge(self.dut.tx)
            await self._cycles(d // 2)
            if int(self.dut.tx.value):
                continue  # a glitch
            value = 0
            for i in range(8):
                await self._cycles(d)
                value |= int(self.dut.tx.value) << i
            await self._cycles(d)
            assert int(self.dut.tx.value) == 1, "bad stop bit from the board"
            self.received.append(value)
            self.bytes_in += 1

    async def recv(self, size):
        waited = 0
        poll = 10 * self.divisor
        while not self.received and waited < self.timeout_cycles:
            await self._cycles(poll)
            waited += poll
        return bytes(self.received.popleft() for _ in range(min(size, len(self.received))))

    async def _now(self):
        return get_sim_time("sec")

    # Transport (called from the bridged host thread).
    def write(self, data):
        resume(self.send)(data)
        return len(data)

    def read(self, size=1):
        return resume(self.recv)(size)

    def clock(self):
        return resume(self._now)()

    @property
    def in_waiting(self):
        return len(self.received)


def _config():
    env = os.environ
    return {"divisor": int(env["KHOP_BOARD_DIVISOR"]),
            "networks": [load_integer_network(p) for p in env["KHOP_BOARD_NETWORKS"].split(",")],
            "queries": int(env.get("KHOP_BOARD_QUERIES", "20")),
            "noise": float(env.get("KHOP_BOARD_NOISE", "0.2")),
            "seed": int(env.get("KHOP_BOARD_SEED", "0")),
            "fuzz": int(env.get("KHOP_BOARD_FUZZ", "0")),
            "summary": env.get("KHOP_BOARD_SUMMARY", "")}


#: Deadline of a host operation, in UART byte times of simulated time (a window of LOADs fills
#: the 512-byte receive buffer; a query takes far less than this).
DEADLINE_BYTES = 4000


def _device(uart):
    """The host driver on ``uart``, its deadlines in simulated seconds."""
    return Device(transport=uart, timeout=DEADLINE_BYTES * 10 * uart.divisor * PERIOD_NS * 1e-9)


async def _start(dut, cfg):
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    uart = UartModel(dut, cfg["divisor"], timeout_cycles=100 * 10 * cfg["divisor"])
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    cocotb.start_soon(uart.monitor())
    return uart


def _noisy(inet, count, noise, rng):
    p, n = inet.patterns.shape
    idx = rng.integers(0, p, size=count)
    q = inet.patterns[idx].copy()
    flips = int(round(noise * n))
    for row in q:
        row[rng.choice(n, size=flips, replace=False)] ^= 1
    return q


@cocotb.test()
async def load_recall_reload_and_recover(dut):
    """Load a network over the UART, recall noisy queries, reload another network, then survive
    garbage and corrupted frames; every result equals the integer model."""
    cfg = _config()
    uart = await _start(dut, cfg)
    rng = np.random.default_rng(cfg["seed"])
    summary = {"phases": []}

    def host():
        dev = _device(uart)
        params = dev.params()
        st0 = dev.status()
        assert not st0.loaded and st0.errors == 0, st0
        for k, inet in enumerate(cfg["networks"]):
            writes = dev.load(inet)
            queries = _noisy(inet, cfg["queries"], cfg["noise"], rng)
            fig = check_against_model(dev, inet, queries)
            assert fig["mismatches"] == 0, (
                f"network {k}: {fig['mismatches']} of {fig['queries']} results differ from the "
                f"integer model, first query {fig['first_mismatch']} (seed {cfg['seed']})")
            summary["phases"].append({"network": k, "writes": writes,
                                      "queries": fig["queries"], "mismatches": 0})
        # Garbage and corrupted frames, then resynchronisation.
        grng = random.Random(cfg["seed"])
        garbage = bytes(grng.choice([END, 0xDB, grng.randrange(256)]) for _ in range(64))
        uart.write(garbage)
        uart.write(encode_frame(Command.QUERY, 1, b"\x00"))     # wrong length
        uart.write(encode_frame(0x55, 2, b"\x01\x02"))           # unknown command
        corrupt = bytearray(encode_frame(Command.PARAMS, 3))
        corrupt[1] ^= 0x40
        uart.write(bytes(corrupt))
        st = dev.sync()
        assert st.errors >= 2, st
        inet = cfg["networks"][-1]
        queries = _noisy(inet, 5, cfg["noise"], rng)
        fig = check_against_model(dev, inet, queries)
        assert fig["mismatches"] == 0, "wrong results after garbage"
        st = dev.status()
        summary["phases"].append({"recovery": True, "queries": fig["queries"],
                                  "mismatches": 0, "errors": st.errors,
                                  "overruns": st.overruns})
        summary["status"] = {"frames": st.frames, "errors": st.errors, "loads": st.loads,
                             "queries": st.queries, "overruns": st.overruns}
        summary["params"] = params.as_dict()

    await bridge(host)()
    summary["bytes_to_board"] = uart.bytes_out
    summary["bytes_from_board"] = uart.bytes_in
    if cfg["summary"]:
        atomic_write(cfg["summary"], json.dumps(summary, indent=1))


@cocotb.test()
async def state_bits_past_n_are_ignored(dut):
    """A query whose padding bits (past n in its last byte) are set gives the same result as
    the same query with them clear."""
    cfg = _config()
    uart = await _start(dut, cfg)

    def host():
        dev = _device(uart)
        inet = cfg["networks"][0]
        dev.load(inet)
        n = inet.n
        fmt = dev.link_format()
        q = inet.patterns[0]
        packed = int.from_bytes(np.packbits(q, bitorder="little").tobytes(), "little")
        pad = ((1 << (8 * fmt.query_bytes)) - 1) ^ ((1 << n) - 1)
        a = dev.recall_one(packed)
        if pad:
            b = dev.recall_one(packed | pad)
            assert a == b, (a, b)
        ref = inet.retrieve(unpack_bits([packed], n))
        assert a[1] == int(np.asarray(ref.steps).reshape(-1)[0])

    await bridge(host)()


@cocotb.test()
async def fuzz_sequences_equal_the_emulator(dut):
    """``KHOP_BOARD_FUZZ`` random sequences (:func:`khop.boards.fuzz.link_sequence`: valid,
    invalid and damaged frames, out-of-range LOADs, garbage) sent at full line rate, each
    closed by a STATUS: the board's reply bytes equal the emulator's, byte for byte, counters
    included. Then the host driver loads the network and recalls noisy queries equal to the
    integer model. Nothing to do when ``KHOP_BOARD_FUZZ`` is 0."""
    cfg = _config()
    if not cfg["fuzz"]:
        return
    uart = await _start(dut, cfg)
    inet = cfg["networks"][0]
    params_request = encode_frame(Command.PARAMS, 0)
    await uart.send(params_request)
    while uart.received.count(END) < 2:
        await ClockCycles(dut.clk, 100)
    [reply] = FrameDecoder().feed(bytes(uart.received))
    uart.received.clear()
    fmt = LinkFormat.from_params_payload(reply.payload)
    emu = EmulatedDevice(fmt.params, fmt.clock_hz)
    emu.write(params_request)
    emu.read(1 << 20)
    words = load_words(fmt.params, inet)
    rng = random.Random(cfg["seed"])
    totals = {"sequences": 0, "bytes_to_board": 0, "bytes_from_board": 0}

    async def exchange(data, what):
        emu.write(data)
        expect = emu.read(1 << 20)
        await uart.send(data)
        waited, limit = 0, (len(expect) + 64) * 10 * uart.divisor + 200_000
        while len(uart.received) < len(expect) and waited < limit:
            await ClockCycles(dut.clk, 50 * uart.divisor)
            waited += 50 * uart.divisor
        got = bytes(uart.received.popleft() for _ in range(len(uart.received)))
        assert got == expect, (f"{what}: the board replied {got.hex()}, the emulator "
                               f"{expect.hex()}, to {data.hex()}")
        totals["bytes_to_board"] += len(data)
        totals["bytes_from_board"] += len(got)

    # The network first, a window of LOADs at a time, then the fuzz sequences.
    for i, burst in enumerate(load_bursts(fmt, words)):
        await exchange(burst, f"load burst {i}")
    for k in range(cfg["fuzz"]):
        data = link_sequence(rng, fmt, words) + encode_frame(Command.STATUS, k & 0xFF)
        await exchange(data, f"sequence {k} (seed {cfg['seed']})")
        totals["sequences"] += 1

    recall = {}

    def host():
        dev = _device(uart)
        dev.sync()
        dev.load(inet)
        fig = check_against_model(dev, inet, _noisy(inet, 20, cfg["noise"],
                                                    np.random.default_rng(cfg["seed"])))
        assert fig["mismatches"] == 0, "wrong results after the fuzz burst"
        recall.update(queries=fig["queries"], mismatches=fig["mismatches"])

    await bridge(host)()
    if cfg["summary"]:
        atomic_write(cfg["summary"], json.dumps({"fuzz": totals, "recall": recall}, indent=1))
