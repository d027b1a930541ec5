"""The framed UART protocol between a host and a board: pure Python, shared by the host driver,
the device emulator and the testbenches.

Framing (SLIP, RFC 1055, plus a CRC)
------------------------------------
A frame *body* is ``cmd (1 byte) | id (1 byte) | payload (0..max_payload bytes) | crc (2
bytes)``, where ``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
reflection, no final XOR) of ``cmd | id | payload``, most significant byte first, so the CRC of
the whole body is 0. On the wire a body is SLIP-escaped (``0xC0 -> 0xDB 0xDC``, ``0xDB -> 0xDB
0xDD``) and sent between two ``END`` bytes (``0xC0``). ``END`` only ever means "frame boundary",
so a receiver resynchronises on the next ``END`` after any garbage. Empty frames (two ``END`` in
a row) are ignored.

Request ids
-----------
The ``id`` of a request is the host's choice; the reply to it carries the same ``id``. A host
matches every reply to its request by it and discards any other (a stale reply to an earlier
request that timed out, a duplicate), so a result can never be taken for the wrong query. An
ERROR reply to a frame that failed a framing check carries the frame's second body byte as its
``id`` (0 if the frame had none): a host treats it as the answer to that id only if it matches.

Receiving a frame (the hardware parser :class:`boards.bridge.FrameParser` does exactly this,
and :class:`FrameDecoder` is its model), checks in this order:

1. more than ``2 + max_payload + 2`` body bytes -> :attr:`ErrorCode.OVERFLOW`
2. ``ESC`` followed by anything but ``ESC_END``/``ESC_ESC`` -> :attr:`ErrorCode.ESCAPE`
3. fewer than 4 body bytes -> :attr:`ErrorCode.TRUNCATED`
4. CRC of the body not 0 -> :attr:`ErrorCode.CRC`

then, by the executor (:func:`check_request`): an unknown command -> :attr:`ErrorCode.COMMAND`,
a payload of the wrong length -> :attr:`ErrorCode.LENGTH`, a LOAD whose address is not below
its memory's depth -> :attr:`ErrorCode.ADDRESS`. A rejected frame gets an ERROR reply and
changes nothing.

Commands (host -> device) and replies (device -> host, ``cmd | 0x80``, same ``id``)
----------------------------------------------------------------------------------
============  ====  ============================  ==================================================
command       code  request payload               reply payload
============  ====  ============================  ==================================================
STATUS        0x01  none                          :data:`STATUS_LAYOUT`: flags, frames, errors,
                                                  overruns, loads, queries
PARAMS        0x02  none                          :data:`PARAMS_FIELDS` (the hardware's parameters)
LOAD          0x03  one ``i_load`` payload        none (acknowledge)
                    (``load_bytes``)
QUERY         0x04  state, bit i = neuron i       ``o_result`` payload (``result_bytes``): state,
                    (``query_bytes``)             steps, converged (:mod:`hw.layout`)
(error)       0xFF  --                            :data:`ERROR_LAYOUT`: error code, the frame's
                                                  first body byte
============  ====  ============================  ==================================================

Multi-byte integers are little-endian; a payload declared as a layout (STATUS, ERROR) is the
layout's bit image as little-endian bytes, and ``i_load``/``i_query``/``o_result`` payloads are
the stream payload integers of :mod:`khop.hw.layout` as ``ceil(bits / 8)`` little-endian bytes
(bits above the integer's width are ignored). STATUS ``idle``: the accelerator is idle;
``loaded``: at least one LOAD was executed since reset. The counters are modulo 2^16: frames
executed without error, ERROR replies, received bytes dropped because the receive buffer was
full, LOAD and QUERY commands executed.

Order and flow control
----------------------
The device executes frames one at a time, in the order received, and sends each reply before it
executes the next frame. Bytes that arrive meanwhile wait in a receive buffer of
:data:`RX_BUFFER` bytes (reported by PARAMS as ``rx_buffer``): a LOAD sent while a query runs is
executed after it, never dropped. Only bytes arriving when the buffer is full are dropped (and
counted as overruns); a host keeps at most ``rx_buffer`` bytes of requests unanswered
(:meth:`LinkFormat.window`). Replies therefore depend on the received bytes alone, never on
their timing, as long as the buffer does not overflow: the emulator
(:class:`boards.emulator.EmulatedDevice`) and the hardware give byte-identical replies.

Version 4 (this one) reports ``threshold_units`` (the sign update's threshold units, which
replaced the digit-serial threshold lanes) and ``batch`` in PARAMS, where version 3 had
``threshold_digit_bits``. Version 3 added the request ids, the receive buffer, the ADDRESS
error and ``rx_buffer`` in PARAMS; STATUS lost its nonce (the id does its work). Version 2
added ``threshold_digit_bits`` to PARAMS.
"""

import enum
import struct
from dataclasses import dataclass, fields

from amaranth.lib import data

from khop.hw.layout import (
    LoadTarget,
    load_layout,
    pack_load,
    result_layout,
    unpack_load,
    unpack_result,
)
from khop.hw.params import AccelParams
from khop.model.errors import KhopError

__all__ = ["END", "ESC", "ESC_END", "ESC_ESC", "PROTOCOL_VERSION", "DEFAULT_BAUDRATE",
           "RX_BUFFER", "Command", "ErrorCode", "REPLY", "ERROR", "PARAMS_FIELDS",
           "PARAMS_FORMAT", "STATUS_LAYOUT", "ERROR_LAYOUT", "HEADER_BYTES", "crc16",
           "slip_escape", "encode_frame", "wire_bytes", "Frame", "FrameError", "FrameDecoder",
           "LinkFormat", "Status", "check_request", "ProtocolError", "payload_bytes"]

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
PROTOCOL_VERSION = 4
#: UART rate of the boards (8N1) unless told otherwise.
DEFAULT_BAUDRATE = 115200
#: Bytes of the device's receive buffer (one iCE40 block RAM of 512 x 8 bits).
RX_BUFFER = 512
#: Body bytes before the payload: the command and the request id.
HEADER_BYTES = 2
#: Body bytes after the payload: the CRC.
CRC_BYTES = 2


class Command(enum.IntEnum):
    STATUS = 0x01
    PARAMS = 0x02
    LOAD = 0x03
    QUERY = 0x04


#: A reply's command byte is the request's with bit 7 set.
REPLY = 0x80
#: Command byte of an error reply.
ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    CRC = 1         # body CRC is not 0
    COMMAND = 2     # unknown command
    LENGTH = 3      # payload length wrong for the command
    OVERFLOW = 4    # body longer than 2 + max_payload + 2 bytes
    ESCAPE = 5      # ESC followed by a byte other than ESC_END / ESC_ESC
    TRUNCATED = 6   # body shorter than 4 bytes (command, id, CRC)
    ADDRESS = 7     # LOAD address not below the depth of its memory

    @property
    def framing(self):
        """The frame was damaged on the line (resending it may succeed)."""
        return self in (ErrorCode.CRC, ErrorCode.OVERFLOW, ErrorCode.ESCAPE,
                        ErrorCode.TRUNCATED)


class ProtocolError(KhopError):
    """A reply that does not follow the protocol, or an ERROR reply where a result was due."""


#: PARAMS reply, in order: ``(field, struct code)``; ``version`` is :data:`PROTOCOL_VERSION`,
#: ``clock_hz`` the board's clock, ``load_addr_bits``/``load_data_bits`` the load port's widths
#: (a check), ``rx_buffer`` :data:`RX_BUFFER`, the others the
#: :meth:`~khop.hw.params.AccelParams.as_dict` entries of that name.
PARAMS_FIELDS = (("version", "B"), ("weight_bits", "B"), ("n", "H"), ("p", "H"),
                 ("lanes", "H"), ("popcount_width", "H"), ("kernel_bits", "B"),
                 ("threshold_frac_bits", "B"), ("max_steps", "B"),
                 ("threshold_units", "H"), ("batch", "B"), ("load_addr_bits", "B"),
                 ("load_data_bits", "H"), ("clock_hz", "I"), ("rx_buffer", "H"))
PARAMS_FORMAT = struct.Struct("<" + "".join(code for _, code in PARAMS_FIELDS))
#: The PARAMS entries that are :class:`~khop.hw.params.AccelParams` parameters.
_PARAMS_CONFIG = ("weight_bits", "n", "p", "lanes", "popcount_width", "kernel_bits",
                  "threshold_frac_bits", "max_steps", "threshold_units", "batch")

#: STATUS reply (its bit image, little-endian): two flags, and counters modulo 2^16 (frames
#: executed without error, ERROR replies, bytes dropped because the receive buffer was full,
#: LOAD and QUERY commands executed).
STATUS_LAYOUT = data.StructLayout({
    "idle": 1, "loaded": 1, "reserved": 6,
    "frames": 16, "errors": 16, "overruns": 16, "loads": 16, "queries": 16})

#: ERROR reply: the :class:`ErrorCode` and the rejected frame's first body byte.
ERROR_LAYOUT = data.StructLayout({"code": 8, "first": 8})


def payload_bytes(layout):
    """Bytes of a payload declared as ``layout``."""
    return (data.Layout.cast(layout).size + 7) // 8


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def slip_escape(body):
    out = bytearray()
    for b in body:
        if b == END:
            out += bytes((ESC, ESC_END))
        elif b == ESC:
            out += bytes((ESC, ESC_ESC))
        else:
            out.append(b)
    return bytes(out)


def encode_frame(cmd, ident, payload=b""):
    """The wire bytes of one frame: ``END | escape(cmd | ident | payload | crc) | END``."""
    body = bytes((cmd, ident)) + bytes(payload)
    crc = crc16(body)
    return bytes((END,)) + slip_escape(body + bytes((crc >> 8, crc & 0xFF))) + bytes((END,))


def wire_bytes(payload_len):
    """The most bytes a frame with ``payload_len`` payload bytes takes on the wire (every body
    byte escaped, two ``END``)."""
    return 2 + 2 * (HEADER_BYTES + payload_len + CRC_BYTES)


@dataclass(frozen=True)
class Frame:
    """A received frame with a good CRC (its command and payload are not validated yet)."""

    cmd: int
    id: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    """A received frame that failed a framing check; ``first`` and ``id`` are its first and
    second body bytes (0 if none)."""

    code: ErrorCode
    first: int
    id: int = 0


class FrameDecoder:
    """Byte-at-a-time receiver: the model of the hardware parser (see the module docstring).

    Parameters
    ----------
    max_payload : int or None
        Payload bytes beyond which a frame is an :attr:`ErrorCode.OVERFLOW`; ``None``: no limit
        (the host side, which bounds frames by ``max_body`` instead).
    max_body : int or None
        With ``max_payload=None``: body bytes kept at most (a longer frame is an OVERFLOW), so
        that garbage without ``END`` cannot grow the buffer without bound.
    """

    def __init__(self, max_payload=None, max_body=None):
        self.max_body = max_body if max_payload is None \
            else HEADER_BYTES + max_payload + CRC_BYTES
        self._reset()

    def _reset(self):
        self._body = bytearray()
        self._esc = self._bad_escape = self._overflow = False

    def feed(self, data):
        """Feed bytes; returns the list of completed :class:`Frame`/:class:`FrameError`."""
        events = []
        for b in bytes(data):
            ev = self.feed_byte(b)
            if ev is not None:
                events.append(ev)
        return events

    def feed_byte(self, b):
        if b == END:
            if self._esc:
                self._bad_escape = True
            ev = self._finish()
            self._reset()
            return ev
        if self._esc:
            self._esc = False
            if b == ESC_END:
                b = END
            elif b == ESC_ESC:
                b = ESC
            else:
                self._bad_escape = True
                return None
        elif b == ESC:
            self._esc = True
            return None
        if self.max_body is not None and len(self._body) >= self.max_body:
            self._overflow = True
        else:
            self._body.append(b)
        return None

    def _finish(self):
        body = bytes(self._body)
        if not body and not (self._bad_escape or self._overflow):
            return None
        first, ident = (tuple(body[:2]) + (0, 0))[:2]
        if self._overflow:
            return FrameError(ErrorCode.OVERFLOW, first, ident)
        if self._bad_escape:
            return FrameError(ErrorCode.ESCAPE, first, ident)
        if len(body) < HEADER_BYTES + CRC_BYTES:
            return FrameError(ErrorCode.TRUNCATED, first, ident)
        if crc16(body) != 0:
            return FrameError(ErrorCode.CRC, first, ident)
        return Frame(body[0], body[1], body[HEADER_BYTES:-CRC_BYTES])


def _nbytes(bits):
    return (bits + 7) // 8


@dataclass(frozen=True)
class Status:
    """A STATUS reply (:data:`STATUS_LAYOUT`)."""

    idle: bool
    loaded: bool
    frames: int
    errors: int
    overruns: int
    loads: int
    queries: int

    @classmethod
    def from_payload(cls, payload):
        size = payload_bytes(STATUS_LAYOUT)
        if len(payload) != size:
            raise ProtocolError(f"STATUS reply of {len(payload)} bytes, expected {size}")
        view = STATUS_LAYOUT.from_bits(int.from_bytes(payload, "little"))
        return cls(**{f.name: (bool if f.type is bool else int)(getattr(view, f.name))
                      for f in fields(cls)})

    def to_payload(self):
        value = STATUS_LAYOUT.const({f.name: int(getattr(self, f.name)) & 0xFFFF
                                     for f in fields(self)})
        return value.as_bits().to_bytes(payload_bytes(STATUS_LAYOUT), "little")


class LinkFormat:
    """Payload sizes and packing of the protocol for one accelerator configuration.

    Parameters
    ----------
    params : AccelParams
    clock_hz : int
        The board's accelerator clock, reported by PARAMS (0 when unknown, e.g. simulation).
    rx_buffer : int
        The device's receive buffer in bytes (:data:`RX_BUFFER`).
    """

    def __init__(self, params: AccelParams, clock_hz=0, rx_buffer=RX_BUFFER):
        if not isinstance(params, AccelParams):
            raise TypeError(f"params must be an AccelParams, not {params!r}")
        self.params = params
        self.clock_hz = int(clock_hz)
        self.rx_buffer = int(rx_buffer)
        self.load_bits = load_layout(params).size
        self.result_bits = result_layout(params).size
        self.load_bytes = _nbytes(self.load_bits)
        self.query_bytes = _nbytes(params.n)
        self.result_bytes = _nbytes(self.result_bits)
        #: Depth of each :class:`~khop.hw.layout.LoadTarget`'s memory: LOAD addresses below it.
        self.load_depths = {LoadTarget.PATTERN: params.pattern_depth,
                            LoadTarget.WEIGHT: params.weight_depth,
                            LoadTarget.LUT: params.lut_depth,
                            LoadTarget.THRESHOLD: params.threshold_depth}

    @property
    def request_lengths(self):
        """Payload length of each command's request."""
        return {Command.STATUS: 0, Command.PARAMS: 0, Command.LOAD: self.load_bytes,
                Command.QUERY: self.query_bytes}

    @property
    def max_payload(self):
        """Longest request payload: the parser's buffer holds this plus the CRC."""
        return max(self.request_lengths.values())

    def window(self, cmd):
        """Requests of command ``cmd`` a host may send before reading their replies: as many
        as the receive buffer holds in the worst case (every byte escaped), at least 1."""
        return max(1, self.rx_buffer // wire_bytes(self.request_lengths[cmd]))

    # Requests ---------------------------------------------------------------------------------

    def load_payload(self, target, addr, data):
        """The payload of a LOAD writing ``data`` at ``addr`` of memory ``target``."""
        return pack_load(self.params, target, addr, data).to_bytes(self.load_bytes, "little")

    def query_payload(self, state):
        """The payload of a QUERY of packed ``state`` (bit i = neuron i)."""
        return int(state).to_bytes(self.query_bytes, "little")

    def load_value(self, payload):
        """The ``i_load`` payload integer of a LOAD's payload bytes (bits above
        ``load_bits`` are ignored)."""
        return int.from_bytes(payload, "little") & ((1 << self.load_bits) - 1)

    def query_state(self, payload):
        """The packed state of a QUERY's payload bytes (bits above ``n`` are ignored)."""
        return int.from_bytes(payload, "little") & ((1 << self.params.n) - 1)

    def load_request(self, ident, target, addr, data):
        return encode_frame(Command.LOAD, ident, self.load_payload(target, addr, data))

    def query_request(self, ident, state):
        return encode_frame(Command.QUERY, ident, self.query_payload(state))

    # Replies ----------------------------------------------------------------------------------

    def params_payload(self):
        p = self.params
        values = {**p.as_dict(), "version": PROTOCOL_VERSION, "clock_hz": self.clock_hz,
                  "load_addr_bits": p.load_addr_bits, "load_data_bits": p.load_data_bits,
                  "rx_buffer": self.rx_buffer}
        return PARAMS_FORMAT.pack(*(values[name] for name, _ in PARAMS_FIELDS))

    @staticmethod
    def from_params_payload(payload):
        """The :class:`LinkFormat` described by a PARAMS reply."""
        if len(payload) != PARAMS_FORMAT.size:
            version = f" (version {payload[0]})" if payload else ""
            raise ProtocolError(f"PARAMS reply of {len(payload)} bytes, expected "
                                f"{PARAMS_FORMAT.size}: the device speaks another protocol"
                                f"{version} than this host ({PROTOCOL_VERSION}); rebuild the "
                                f"bitstream with this khop")
        values = dict(zip((name for name, _ in PARAMS_FIELDS), PARAMS_FORMAT.unpack(payload),
                          strict=True))
        if values["version"] != PROTOCOL_VERSION:
            raise ProtocolError(f"the device speaks protocol version {values['version']}, "
                                f"this host {PROTOCOL_VERSION}; rebuild the bitstream with "
                                f"this khop")
        try:
            params = AccelParams.from_dict({k: values[k] for k in _PARAMS_CONFIG})
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"the device reports invalid parameters: {e}") from None
        addr_bits, data_bits = values["load_addr_bits"], values["load_data_bits"]
        if (params.load_addr_bits, params.load_data_bits) != (addr_bits, data_bits):
            raise ProtocolError(f"the device's load port is {addr_bits} address and "
                                f"{data_bits} data bits, expected {params.load_addr_bits} and "
                                f"{params.load_data_bits}")
        if values["rx_buffer"] < 1:
            raise ProtocolError("the device reports a receive buffer of 0 bytes")
        return LinkFormat(params, values["clock_hz"], values["rx_buffer"])

    def result_from_payload(self, payload):
        """``(state, steps, converged)`` of a QUERY reply."""
        if len(payload) != self.result_bytes:
            raise ProtocolError(f"QUERY reply of {len(payload)} bytes, expected "
                                f"{self.result_bytes}")
        return unpack_result(self.params, int.from_bytes(payload, "little"))


def check_request(fmt: LinkFormat, frame: Frame):
    """The :class:`ErrorCode` the executor answers a good-CRC frame with, or ``None`` if it is
    a valid request."""
    try:
        cmd = Command(frame.cmd)
    except ValueError:
        return ErrorCode.COMMAND
    if len(frame.payload) != fmt.request_lengths[cmd]:
        return ErrorCode.LENGTH
    if cmd == Command.LOAD:
        target, addr, _ = unpack_load(fmt.params, fmt.load_value(frame.payload))
        if addr >= fmt.load_depths[target]:
            return ErrorCode.ADDRESS
    return None
