"""Host driver of a board running the khop UART bridge (protocol: :mod:`boards.protocol`).

The transport is injectable: anything with ``write(bytes)`` and ``read(size) -> bytes``
(returning fewer bytes, or ``b""``, when its timeout expires) works, e.g. a
``serial.Serial``, the device emulator (:class:`boards.emulator.EmulatedDevice`) or the cocotb
UART model of the cosimulation.
"""

import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from khop.hw.layout import load_words
from khop.hw.params import configure
from khop.model.errors import KhopError, ParameterError
from khop.model.fixed import IntegerNetwork, pack_bits, to_bits, unpack_bits
from khop.model.metrics import noisy_queries

from .protocol import (
    DEFAULT_BAUDRATE,
    END,
    ERROR,
    REPLY,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    LinkFormat,
    ProtocolError,
    Status,
    encode_frame,
)

__all__ = ["LinkError", "DeviceError", "Device", "open_serial", "check_against_model",
           "RunReport", "check_options", "run_network"]


class LinkError(KhopError):
    """No (valid) reply from the device: timeout, garbled reply, wrong device."""


class DeviceError(LinkError):
    """The device answered a request with an ERROR reply."""

    def __init__(self, code, first):
        self.code, self.first = code, first
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"the device rejected frame 0x{first:02x}: {name}")


def open_serial(port, baudrate=DEFAULT_BAUDRATE, timeout=2.0):
    """A pyserial port; a missing or busy port is a :class:`LinkError` naming it."""
    import serial

    try:
        return serial.Serial(port, baudrate, timeout=timeout)
    except (serial.SerialException, OSError) as e:
        raise LinkError(f"cannot open serial port {port}: {e}") from None


class Device:
    """A board with the khop bridge.

    Parameters
    ----------
    port : str or None
        Serial port (``/dev/ttyUSB1``), opened with pyserial at ``baudrate``.
    transport : object or None
        Instead of ``port``: an object with ``write`` and ``read`` (see the module docstring).
    retries : int
        Attempts of :meth:`sync` before giving up.
    """

    def __init__(self, port=None, *, transport=None, baudrate=DEFAULT_BAUDRATE, timeout=2.0,
                 retries=4):
        if (port is None) == (transport is None):
            raise TypeError("give exactly one of port and transport")
        self._transport = open_serial(port, baudrate, timeout) if transport is None \
            else transport
        self._decoder = FrameDecoder()
        self._events = deque()
        self._nonce = 0
        self._format = None
        self.retries = retries

    # Framing ----------------------------------------------------------------------------------

    def _next_event(self):
        """The next received :class:`Frame`/:class:`FrameError`; ``LinkError`` on timeout."""
        while not self._events:
            data = self._transport.read(1)
            if not data:
                raise LinkError("timeout: no reply from the device")
            more = getattr(self._transport, "in_waiting", 0)
            if more:
                data += self._transport.read(more)
            self._events.extend(self._decoder.feed(data))
        return self._events.popleft()

    def request(self, cmd, payload=b""):
        """Send one request and return its reply's payload; :class:`DeviceError` on an ERROR
        reply, :class:`LinkError` on a timeout or a reply that does not belong to it."""
        self._transport.write(encode_frame(cmd, payload))
        ev = self._next_event()
        if isinstance(ev, FrameError):
            raise LinkError(f"garbled reply to command 0x{cmd:02x} ({ev.code.name})")
        if ev.cmd == ERROR and len(ev.payload) == 2:
            raise DeviceError(*ev.payload)
        if ev.cmd != cmd | REPLY:
            raise LinkError(f"reply 0x{ev.cmd:02x} to command 0x{cmd:02x}")
        return ev.payload

    def sync(self):
        """Resynchronise after garbage or a lost reply: ``END``, then STATUS with a fresh nonce
        until the reply carrying it arrives; returns that :class:`Status`."""
        for _ in range(self.retries):
            self._nonce = (self._nonce + 1) & 0xFF
            self._events.clear()
            self._decoder = FrameDecoder()
            self._transport.write(bytes((END,)) + encode_frame(Command.STATUS,
                                                               bytes((self._nonce,))))
            try:
                while True:
                    ev = self._next_event()
                    if (isinstance(ev, Frame) and ev.cmd == Command.STATUS | REPLY
                            and ev.payload[:1] == bytes((self._nonce,))):
                        return Status.from_payload(ev.payload)
            except LinkError:
                continue
        raise LinkError(f"no answer to STATUS after {self.retries} attempts")

    # Commands ---------------------------------------------------------------------------------

    def status(self):
        """The device's :class:`~boards.protocol.Status` (flags and counters)."""
        self._nonce = (self._nonce + 1) & 0xFF
        st = Status.from_payload(self.request(Command.STATUS, bytes((self._nonce,))))
        if st.nonce != self._nonce:
            raise LinkError(f"STATUS reply for nonce {st.nonce}, expected {self._nonce}")
        return st

    def link_format(self):
        """The device's :class:`~boards.protocol.LinkFormat` (asked once, then cached)."""
        if self._format is None:
            try:
                self._format = LinkFormat.from_params_payload(self.request(Command.PARAMS))
            except ProtocolError as e:
                raise LinkError(str(e)) from None
        return self._format

    def params(self):
        """The hardware's :class:`~hw.params.AccelParams`."""
        return self.link_format().params

    @property
    def clock_hz(self):
        return self.link_format().clock_hz

    #: LOAD frames sent before their acknowledges are read (see :meth:`load`).
    LOAD_WINDOW = 32
    #: ``END`` bytes sent after each pipelined LOAD frame: longer on the line than the
    #: acknowledge the bridge sends meanwhile (at most 7 bytes), so the next frame starts
    #: after the bridge is free again; the fill bytes are dropped or read as empty frames.
    LOAD_FILL = 8

    def load(self, network: IntegerNetwork, progress=None, window=None):
        """Write every pattern word, weight word, lookup-table entry and the threshold of
        ``network``; returns the number of writes. ``progress(done, total)`` if given.

        Frames are pipelined: up to ``window`` (default :attr:`LOAD_WINDOW`) LOAD frames, each
        followed by :attr:`LOAD_FILL` ``END`` bytes, are sent before their acknowledges are
        read, so a USB-serial adapter's latency is paid once per window instead of once per
        word. The fill bytes count as overruns in STATUS. ``window=1`` waits for each
        acknowledge."""
        fmt = self.link_format()
        window = self.LOAD_WINDOW if window is None else max(1, int(window))
        try:
            writes = load_words(fmt.params, network)
        except ValueError as e:
            raise LinkError(f"the network does not fit the device: {e}") from None
        fill = bytes((END,)) * (self.LOAD_FILL if window > 1 else 0)
        for start in range(0, len(writes), window):
            chunk = writes[start:start + window]
            self._transport.write(b"".join(fmt.load_request(t, a, d) + fill
                                           for t, a, d in chunk))
            for i in range(start, start + len(chunk)):
                ev = self._next_event()
                if isinstance(ev, Frame) and ev.cmd == ERROR and len(ev.payload) == 2:
                    raise DeviceError(*ev.payload)
                if not (isinstance(ev, Frame) and ev.cmd == Command.LOAD | REPLY):
                    raise LinkError(f"no acknowledge for load write {i} of {len(writes)}")
            if progress is not None:
                progress(start + len(chunk), len(writes))
        return len(writes)

    def recall_one(self, state):
        """``(state, steps, converged)`` for one packed query (bit i = neuron i)."""
        fmt = self.link_format()
        payload = self.request(Command.QUERY,
                               int(state).to_bytes(fmt.query_bytes, "little"))
        try:
            return fmt.result_from_payload(payload)
        except ProtocolError as e:
            raise LinkError(str(e)) from None

    def recall(self, states):
        """Retrieval from 0/1 states (Q, N) (1 means +1): ``(states, steps, converged)`` as
        (Q, N) ``uint8``, (Q,) ``int64`` and (Q,) ``bool`` arrays."""
        n = self.params().n
        states = np.atleast_2d(np.asarray(states, dtype=np.uint8))
        if states.shape[1] != n:
            raise LinkError(f"queries have {states.shape[1]} neurons, the device {n}")
        out, steps, conv = [], [], []
        for q in pack_bits(states):
            s, k, c = self.recall_one(q)
            out.append(s)
            steps.append(k)
            conv.append(c)
        return (unpack_bits(out, n), np.array(steps, dtype=np.int64),
                np.array(conv, dtype=bool))

    def close(self):
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_against_model(device: Device, inet: IntegerNetwork, queries):
    """Recall 0/1 ``queries`` on the device and with the integer model; returns a dict of
    figures (``mismatches`` counts results differing in any field)."""
    t0 = time.perf_counter()
    hw_states, hw_steps, hw_conv = device.recall(queries)
    seconds = time.perf_counter() - t0
    ref = inet.retrieve(queries)
    differ = ((hw_states != ref.states).any(axis=1) | (hw_steps != ref.steps)
              | (hw_conv != ref.converged))
    return {"queries": len(queries), "mismatches": int(differ.sum()),
            "first_mismatch": int(np.argmax(differ)) if differ.any() else None,
            "seconds": seconds, "states": hw_states, "steps": hw_steps,
            "converged": hw_conv, "model": ref}


def check_options(params, options):
    """Raise :class:`~khop.model.errors.ParameterError` naming both values when a hardware option
    the user set (``options``: :data:`khop.hw.params.HARDWARE_OPTIONS`, ``None`` = unset)
    differs from what the board reports (``params``, as :meth:`AccelParams.options`). The
    quantizer is not the board's: it is never compared."""
    board = params.options()
    differ = [f"{name}={board[name]} but --{name.replace('_', '-')} {value} was given"
              for name, value in options.items()
              if value is not None and name != "quantizer" and value != board[name]]
    if differ:
        raise ParameterError("the board is built for " + "; ".join(differ))


@dataclass(frozen=True)
class RunReport:
    """What ``khop run`` found: the board's configuration, the load, and the noisy queries
    recalled on the board against the bit-exact integer model.

    :meth:`format` is the text ``khop run`` prints, :meth:`as_dict` its JSON form.
    """

    port: str
    params: dict
    clock_mhz: float
    writes: int
    load_seconds: float
    queries: int
    noise: float
    seed: int
    seconds: float
    mismatches: int
    first_mismatch: int | None
    recall: float
    exact_recall: float
    mean_steps: float
    frames: int
    errors: int
    overruns: int

    def as_dict(self):
        return asdict(self)

    def header(self):
        p = self.params
        return (f"{self.port}: N={p['n']} P={p['p']} {p['weight_bits']}-bit, {p['lanes']} lanes, "
                f"popcount width {p['popcount_width']}, kernel_bits {p['kernel_bits']}, "
                f"clock {self.clock_mhz:g} MHz")

    def format(self):
        return "\n".join([
            self.header(),
            f"loaded {self.writes} words in {self.load_seconds:.2f} s",
            (f"{self.queries} queries with {self.noise:.0%} of the bits flipped (seed "
             f"{self.seed}) in {self.seconds:.2f} s: {self.mismatches} differ from the "
             f"integer model"),
            (f"  recall (bit-wise) {self.recall:.4f}, exact recall {self.exact_recall:.4f}, "
             f"mean steps {self.mean_steps:.2f}"),
            f"  link: {self.frames} frames, {self.errors} errors, {self.overruns} overruns"])


def run_network(device: Device, net, *, queries=100, noise=0.2, seed=0, options=None,
                port="", name="the network"):
    """Load trained network ``net`` (a :class:`khop.model.netfile.Network`) into the board
    behind ``device``, quantized for the parameters the board reports, recall ``queries`` noisy
    queries (``noise``: fraction of bits flipped, ``seed``) on it and with the integer model;
    returns the :class:`RunReport`.

    ``options``: the hardware options the user set; each must equal the board's
    (:func:`check_options`), except ``quantizer``, which is not the board's to say: unset, it
    is the network's own (``paper`` for a network file of format version 1). ``port`` and
    ``name`` label the report and the errors.
    """
    device.sync()
    prm = device.params()
    check_options(prm, options or {})
    chosen = {**prm.options(), "quantizer": (options or {}).get("quantizer")}
    try:
        _, inet = configure(net, **chosen)
        prm.check_network(inet)
    except (ValueError, KhopError) as e:
        raise KhopError(f"{name} does not fit the board: {e}") from None
    t0 = time.perf_counter()
    writes = device.load(inet)
    load_s = time.perf_counter() - t0
    noisy, targets = noisy_queries(net.patterns, noise, queries, np.random.default_rng(seed))
    fig = check_against_model(device, inet, to_bits(noisy))
    stored = to_bits(net.patterns[targets])
    status = device.status()
    return RunReport(
        port=port, params=prm.as_dict(), clock_mhz=device.clock_hz / 1e6, writes=writes,
        load_seconds=load_s, queries=fig["queries"], noise=noise, seed=seed,
        seconds=fig["seconds"], mismatches=fig["mismatches"],
        first_mismatch=fig["first_mismatch"],
        recall=float(np.mean(fig["states"] == stored)),
        exact_recall=float(np.mean((fig["states"] == stored).all(axis=1))),
        mean_steps=float(np.mean(fig["steps"])), frames=status.frames, errors=status.errors,
        overruns=status.overruns)
