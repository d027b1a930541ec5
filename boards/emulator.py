"""A Python model of a board running the bridge: the executable specification of
:class:`boards.bridge.Bridge`, and a transport for testing the host driver without hardware.

It parses frames with :class:`~boards.protocol.FrameDecoder` (the parser's model), executes them
in order on memories decoded from the LOAD writes and answers queries with the bit-exact
integer model. Its receive buffer never overflows (the hardware's holds
:data:`~boards.protocol.RX_BUFFER` bytes): as long as the hardware's does not either, both give
byte-identical replies to any byte sequence.

As a transport it has a virtual clock (:meth:`EmulatedDevice.clock`) that a read finding no
reply advances by ``read_timeout`` seconds, as a serial port's read would wait: a host's
deadlines are exercised without waiting.
"""

from collections import deque

import numpy as np

from khop.hw.layout import (
    LoadTarget,
    pack_result_fields,
    unpack_load,
    unpack_pattern_words,
    unpack_threshold_words,
    unpack_weight_words,
)
from khop.hw.params import AccelParams
from khop.model.fixed import IntegerNetwork, pack_bits, unpack_bits

from .protocol import (
    ERROR,
    REPLY,
    Command,
    Frame,
    FrameDecoder,
    LinkFormat,
    Status,
    check_request,
    encode_frame,
)

__all__ = ["EmulatedDevice"]


class EmulatedDevice:
    """Transport (``write``/``read``) that behaves like the board.

    Parameters
    ----------
    params : AccelParams
    clock_hz : int
        Reported by PARAMS.
    """

    def __init__(self, params: AccelParams, clock_hz=0, read_timeout=0.1):
        self.fmt = LinkFormat(params, clock_hz)
        self.read_timeout = read_timeout
        self._now = 0.0
        self.params = params
        self._decoder = FrameDecoder(self.fmt.max_payload)
        self._out = deque()
        self.pattern = [0] * params.pattern_depth
        self.weight = [0] * params.weight_depth
        self.lut = [0] * params.lut_depth
        self.threshold = [0] * params.threshold_depth
        self.counters = dict(frames=0, errors=0, overruns=0, loads=0, queries=0)
        self.loaded = False

    # Transport ------------------------------------------------------------------------------

    def write(self, data):
        for ev in self._decoder.feed(data):
            self._execute(ev)
        return len(data)

    def read(self, size=1):
        out = bytes(self._out.popleft() for _ in range(min(size, len(self._out))))
        if not out:
            self._now += self.read_timeout
        return out

    def clock(self):
        """Seconds of virtual time (see the module docstring)."""
        return self._now

    @property
    def in_waiting(self):
        return len(self._out)

    # Executor -------------------------------------------------------------------------------

    def _reply(self, cmd, ident, payload=b""):
        self._out.extend(encode_frame(cmd, ident, payload))

    def _error(self, code, first, ident):
        self.counters["errors"] += 1
        self._reply(ERROR, ident, bytes((int(code), first)))

    def _execute(self, ev):
        if not isinstance(ev, Frame):
            self._error(ev.code, ev.first, ev.id)
            return
        code = check_request(self.fmt, ev)
        if code is not None:
            self._error(code, ev.cmd, ev.id)
            return
        self.counters["frames"] += 1
        cmd = Command(ev.cmd)
        if cmd == Command.STATUS:
            st = Status(True, self.loaded, **self.counters)
            self._reply(cmd | REPLY, ev.id, st.to_payload())
        elif cmd == Command.PARAMS:
            self._reply(cmd | REPLY, ev.id, self.fmt.params_payload())
        elif cmd == Command.LOAD:
            self._load(self.fmt.load_value(ev.payload))
            self.counters["loads"] += 1
            self.loaded = True
            self._reply(cmd | REPLY, ev.id)
        else:
            self.counters["queries"] += 1
            state = self.fmt.query_state(ev.payload)
            value = pack_result_fields(self.params, *self._retrieve(state))
            self._reply(cmd | REPLY, ev.id, value.to_bytes(self.fmt.result_bytes, "little"))

    def _load(self, value):
        """One checked write (:func:`~boards.protocol.check_request` refused addresses beyond
        the memory)."""
        prm = self.params
        target, addr, data = unpack_load(prm, value)
        if target == LoadTarget.PATTERN:
            self.pattern[addr] = data & ((1 << prm.pattern_width) - 1)
        elif target == LoadTarget.WEIGHT:
            self.weight[addr] = data & ((1 << prm.weight_width) - 1)
        elif target == LoadTarget.LUT:
            self.lut[addr] = data & ((1 << prm.kernel_bits) - 1)
        else:
            self.threshold[addr] = data & ((1 << prm.threshold_width) - 1)

    def network(self):
        """The :class:`IntegerNetwork` held by the memories."""
        prm = self.params
        return IntegerNetwork(patterns=unpack_pattern_words(prm, self.pattern),
                              codes=unpack_weight_words(prm, self.weight),
                              lut=np.array(self.lut, dtype=np.int64),
                              r_fx=unpack_threshold_words(prm, self.threshold),
                              config=prm.fixed)

    def _retrieve(self, state):
        """``(state, steps, converged)`` of the integer model for one packed query."""
        res = self.network().retrieve(unpack_bits([state], self.params.n))
        return (int(pack_bits(res.states)[0]), int(np.asarray(res.steps).reshape(-1)[0]),
                bool(np.asarray(res.converged).reshape(-1)[0]))
