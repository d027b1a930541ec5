"""Host driver of a board running the khop UART bridge (protocol: :mod:`boards.protocol`).

The transport is injectable: anything with ``write(bytes)`` and ``read(size) -> bytes``
(returning fewer bytes, or ``b""``, when its timeout expires) works, e.g. a
``serial.Serial``, the device emulator (:class:`boards.emulator.EmulatedDevice`) or the cocotb
UART model of the cosimulation.
"""

import math
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
    ERROR_LAYOUT,
    REPLY,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    LinkFormat,
    ProtocolError,
    Status,
    encode_frame,
    payload_bytes,
)

__all__ = ["LinkError", "DeviceError", "Device", "open_serial", "check_against_model",
           "RunReport", "check_options", "run_network"]


class LinkError(KhopError):
    """No (valid) reply from the device within the deadline, a reply that breaks the protocol,
    or a wrong device."""


class DeviceError(LinkError):
    """The device answered a request with an ERROR reply."""

    def __init__(self, code, first):
        self.code, self.first = code, first
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"the device rejected frame 0x{first:02x}: {name}")


#: Longest reply body the host keeps (a PARAMS reply or the result of the largest accelerator
#: is far shorter); a longer one is garbage.
MAX_REPLY_BODY = 4096
#: Read timeout of the serial port, so that every wait ends close to its deadline.
SERIAL_POLL = 0.05


def open_serial(port, baudrate=DEFAULT_BAUDRATE, timeout=SERIAL_POLL):
    """A pyserial port; a missing or busy port is a :class:`LinkError` naming it."""
    import serial

    try:
        return serial.Serial(port, baudrate, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as e:
        raise LinkError(f"cannot open serial port {port}: {e}") from None


class Device:
    """A board with the khop bridge.

    Every operation (a request and its reply; a window of LOAD frames and their acknowledges)
    ends within ``timeout`` seconds, whatever arrives: each request carries a fresh id, replies
    with any other id (stale, duplicated) are discarded, a request whose frame the device
    reports damaged (a framing ERROR with its id) or that got no reply is sent again, up to
    ``attempts`` times within the deadline, and when the deadline passes the operation raises
    one :class:`LinkError` saying what was received.

    Parameters
    ----------
    port : str or None
        Serial port (``/dev/ttyUSB1``), opened with pyserial at ``baudrate``.
    transport : object or None
        Instead of ``port``: an object with ``write`` and ``read`` (see the module docstring),
        and optionally ``clock()`` (seconds; the deadlines' clock, e.g. simulated time).
    timeout : float
        Seconds each operation may take.
    attempts : int
        Sends of a request within its deadline (the wait for a reply is ``timeout /
        attempts``).
    """

    def __init__(self, port=None, *, transport=None, baudrate=DEFAULT_BAUDRATE, timeout=2.0,
                 attempts=3):
        if (port is None) == (transport is None):
            raise TypeError("give exactly one of port and transport")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if not (isinstance(attempts, int) and attempts >= 1):
            raise ValueError(f"attempts must be an integer >= 1, not {attempts!r}")
        self._transport = open_serial(port, baudrate) if transport is None else transport
        self._clock = getattr(self._transport, "clock", None) or time.monotonic
        self.timeout = float(timeout)
        self.attempts = attempts
        self._decoder = FrameDecoder(max_body=MAX_REPLY_BODY)
        self._events = deque()
        self._ident = 0
        self._received = 0
        self._format = None
        #: Requests sent again (a damaged frame or a lost reply), and replies discarded (stale,
        #: duplicated, damaged) since the device was opened.
        self.resent = self.discarded = 0

    # Framing ----------------------------------------------------------------------------------

    def _new_id(self):
        self._ident = (self._ident + 1) & 0xFF
        return self._ident

    def _receive(self, deadline):
        """The next received :class:`Frame`/:class:`FrameError`, or ``None`` at ``deadline``."""
        while not self._events:
            if self._clock() >= deadline:
                return None
            data = self._transport.read(1)
            if not data:
                continue
            more = getattr(self._transport, "in_waiting", 0)
            if more:
                data += self._transport.read(more)
            self._received += len(data)
            self._events.extend(self._decoder.feed(data))
        return self._events.popleft()

    def _flush(self):
        """Forget everything received so far: it answers no request still waiting."""
        self.discarded += len(self._events)
        self._events.clear()

    def _no_reply(self, what, received, damaged=0):
        if damaged:
            detail = (f"the device received it damaged {damaged} time"
                      f"{'s' if damaged > 1 else ''}; a noisy line")
        elif received:
            detail = f"{received} bytes received, none a reply to it"
        else:
            detail = "nothing received"
        return LinkError(f"no reply to {what} within {self.timeout:g} s ({detail}); check the "
                         f"port, the baud rate and that the board runs a khop bitstream")

    def request(self, cmd, payload=b"", what=None):
        """Send one request and return its reply's payload (see the class docstring);
        :class:`DeviceError` on an ERROR reply other than a damaged frame, :class:`LinkError`
        when no reply arrives in time."""
        what = what or _command_name(cmd)
        deadline = self._clock() + self.timeout
        received0 = self._received
        damaged = 0
        for attempt in range(self.attempts):
            if attempt:
                self.resent += 1
            self._flush()
            ident = self._new_id()
            self._transport.write(encode_frame(cmd, ident, payload))
            wait = min(deadline, self._clock() + self.timeout / self.attempts)
            if attempt == self.attempts - 1:
                wait = deadline
            while (ev := self._receive(wait)) is not None:
                if not isinstance(ev, Frame) or ev.id != ident:
                    self.discarded += 1
                    continue
                if ev.cmd == ERROR:
                    _check_damaged(ev)
                    damaged += 1
                    break           # the request was damaged on the way: send it again
                if ev.cmd != cmd | REPLY:
                    self.discarded += 1
                    continue
                return ev.payload
            if self._clock() >= deadline:
                break
        raise self._no_reply(what, self._received - received0, damaged)

    def sync(self):
        """Resynchronise after garbage or a lost reply: forget partial input, send ``END`` and
        a STATUS; returns that :class:`Status`."""
        self._decoder = FrameDecoder(max_body=MAX_REPLY_BODY)
        self._flush()
        self._transport.write(bytes((END,)))
        return self.status()

    # Commands ---------------------------------------------------------------------------------

    def status(self):
        """The device's :class:`~boards.protocol.Status` (flags and counters)."""
        return self._decode(Status.from_payload, self.request(Command.STATUS))

    def link_format(self):
        """The device's :class:`~boards.protocol.LinkFormat` (asked once, then cached)."""
        if self._format is None:
            self._format = self._decode(LinkFormat.from_params_payload,
                                        self.request(Command.PARAMS))
        return self._format

    @staticmethod
    def _decode(parse, payload):
        try:
            return parse(payload)
        except ProtocolError as e:
            raise LinkError(str(e)) from None

    def params(self):
        """The hardware's :class:`~hw.params.AccelParams`."""
        return self.link_format().params

    @property
    def clock_hz(self):
        return self.link_format().clock_hz

    def load(self, network: IntegerNetwork, progress=None, window=None):
        """Write every pattern word, weight word, lookup-table entry and threshold word of
        ``network``; returns the number of writes. ``progress(done, total)`` if given.

        Frames are pipelined: up to ``window`` LOAD frames (default and at most
        :meth:`LinkFormat.window`, what the device's receive buffer holds) are sent before
        their acknowledges are read, so a USB-serial adapter's latency is paid once per window
        instead of once per word. A write whose acknowledge does not come (lost, damaged) is
        sent again on its own (:meth:`request`; a write is idempotent)."""
        fmt = self.link_format()
        most = fmt.window(Command.LOAD)
        window = most if window is None else max(1, min(int(window), most))
        try:
            writes = [fmt.load_payload(t, a, d) for t, a, d in load_words(fmt.params, network)]
        except ValueError as e:
            raise LinkError(f"the network does not fit the device: {e}") from None
        for start in range(0, len(writes), window):
            self._flush()
            pending = {self._new_id(): i for i in range(start, min(start + window, len(writes)))}
            self._transport.write(b"".join(encode_frame(Command.LOAD, ident, writes[i])
                                           for ident, i in pending.items()))
            deadline = self._clock() + self.timeout
            while pending and (ev := self._receive(deadline)) is not None:
                if not isinstance(ev, Frame) or ev.id not in pending:
                    self.discarded += 1
                elif ev.cmd == ERROR:
                    _check_damaged(ev)
                    break
                elif ev.cmd == Command.LOAD | REPLY and not ev.payload:
                    del pending[ev.id]
                else:
                    self.discarded += 1
            for i in sorted(pending.values()):
                self.resent += 1
                self.request(Command.LOAD, writes[i], what=f"load write {i} of {len(writes)}")
            if progress is not None:
                progress(min(start + window, len(writes)), len(writes))
        return len(writes)

    def recall_one(self, state):
        """``(state, steps, converged)`` for one packed query (bit i = neuron i)."""
        fmt = self.link_format()
        payload = self.request(Command.QUERY, fmt.query_payload(state))
        return self._decode(fmt.result_from_payload, payload)

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


def _command_name(cmd):
    try:
        return Command(cmd).name
    except ValueError:
        return f"command 0x{cmd:02x}"


def _check_damaged(frame):
    """Return quietly when ERROR reply ``frame`` says the request was damaged on the line
    (:attr:`ErrorCode.framing`: sending it again may succeed); raise :class:`DeviceError` for
    any other ERROR (code -1: an unknown code or a malformed ERROR payload)."""
    if len(frame.payload) != payload_bytes(ERROR_LAYOUT):
        raise DeviceError(-1, 0)
    code, first = frame.payload
    if code not in ErrorCode._value2member_map_:
        raise DeviceError(-1, first)
    if not ErrorCode(code).framing:
        raise DeviceError(code, first)


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
