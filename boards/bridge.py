"""The frame bridge between a UART byte stream and the accelerator's streams.

Protocol: :mod:`boards.protocol` (SLIP framing, CRC-16/CCITT-FALSE); its Python model is
:class:`boards.emulator.EmulatedDevice`.

- A receive buffer (:class:`amaranth.lib.fifo.SyncFIFOBuffered`, :data:`~boards.protocol.RX_BUFFER`
  bytes) takes every received byte; only a byte arriving when it is full is dropped (and
  counted as an overrun). A register passes its bytes to the parser.
- :class:`FrameParser` reads the buffer, un-escapes, checks the CRC on the fly and keeps the
  command, the request id and the last ``max_payload + 2`` body bytes in a shift register; a
  complete frame is held, with its error code, until the executor is done with it (the parser
  reads no byte meanwhile: they wait in the buffer).
- :class:`FrameEncoder` wraps reply bytes into a frame: ``END``, escaped bytes, escaped CRC,
  ``END``.
- :class:`Bridge` checks command, length and LOAD address, executes (LOAD -> ``o_load``, QUERY
  -> ``o_query`` then waits for ``i_result``, STATUS, PARAMS) and sends the reply, with the
  request's id, or an ERROR.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from khop.hw.layout import load_layout, result_layout
from khop.hw.params import AccelParams

from .protocol import (
    END,
    ERROR,
    ERROR_LAYOUT,
    ESC,
    ESC_END,
    ESC_ESC,
    HEADER_BYTES,
    REPLY,
    RX_BUFFER,
    STATUS_LAYOUT,
    Command,
    ErrorCode,
    LinkFormat,
    payload_bytes,
)

__all__ = ["crc16_update", "FrameParser", "FrameEncoder", "Bridge"]


def crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE after one more byte (combinational, MSB first)."""
    c = crc
    for i in range(8):
        feedback = c[15] ^ byte[7 - i]
        c = Cat(Const(0, 1), c[:15]) ^ Mux(feedback, Const(0x1021, 16), Const(0, 16))
    return c


def frame_layout(max_payload):
    max_body = HEADER_BYTES + max_payload + 2
    return data.StructLayout({"error": 3, "cmd": 8, "id": 8, "length": range(max_body + 1),
                              "data": 8 * (max_payload + 2)})


class FrameParser(wiring.Component):
    """Receiver of frames (the model is :class:`boards.protocol.FrameDecoder`).

    ``o_frame`` becomes valid at the ``END`` closing a non-empty frame, with ``error`` (0 or an
    :class:`~boards.protocol.ErrorCode`), ``cmd`` and ``id`` (the first and second body bytes, 0
    if none), ``length`` (body bytes kept, at most ``max_payload + 4``) and ``data`` (the body
    bytes after ``id``, the last one in the top byte); it holds until ``ready``, and
    ``i_byte`` is not ready meanwhile.

    Members
    -------
    i_byte : In(stream.Signature(8))
    o_frame : Out(stream.Signature(frame_layout(max_payload)))
    """

    def __init__(self, max_payload):
        self._max_payload = max_payload
        super().__init__({"i_byte": In(stream.Signature(8)),
                          "o_frame": Out(stream.Signature(frame_layout(max_payload)))})

    def elaborate(self, platform):
        m = Module()
        max_body = HEADER_BYTES + self._max_payload + 2
        f = self.o_frame.payload
        esc, bad_esc, overflow = Signal(), Signal(), Signal()
        crc = Signal(16, init=0xFFFF)
        count = Signal(range(max_body + 1))
        cmd = Signal(8)
        ident = Signal(8)
        buf = Signal(8 * (max_body - HEADER_BYTES))
        m.d.comb += [
            f.cmd.eq(cmd), f.id.eq(ident), f.length.eq(count), f.data.eq(buf),
            self.i_byte.ready.eq(~self.o_frame.valid),
        ]
        with m.If(overflow):
            m.d.comb += f.error.eq(ErrorCode.OVERFLOW)
        with m.Elif(bad_esc):
            m.d.comb += f.error.eq(ErrorCode.ESCAPE)
        with m.Elif(count < HEADER_BYTES + 2):
            m.d.comb += f.error.eq(ErrorCode.TRUNCATED)
        with m.Elif(crc != 0):
            m.d.comb += f.error.eq(ErrorCode.CRC)

        def clear():
            return [esc.eq(0), bad_esc.eq(0), overflow.eq(0), crc.eq(0xFFFF), count.eq(0),
                    cmd.eq(0), ident.eq(0)]

        # Two stages: a byte taken is unescaped into `value` (registered, with `store`), and
        # the cycle after stored into the frame, so that the enables of the wide body register
        # and the CRC come from flip-flops, not from the byte's compares (on both boards the
        # chain from a received byte to the body's enable was the critical path). An END
        # counts the body byte still in the second stage.
        byte = self.i_byte.payload
        value = Signal(8)
        store = Signal()
        m.d.sync += store.eq(0)
        with m.If(self.o_frame.valid):
            with m.If(self.o_frame.ready):
                m.d.sync += [self.o_frame.valid.eq(0), *clear()]
        with m.Elif(self.i_byte.valid):
            with m.If(byte == END):
                m.d.sync += esc.eq(0)
                with m.If(esc):
                    m.d.sync += bad_esc.eq(1)
                with m.If((count != 0) | store | esc | bad_esc | overflow):
                    m.d.sync += self.o_frame.valid.eq(1)
            with m.Elif(esc):
                m.d.sync += esc.eq(0)
                with m.If(byte == ESC_END):
                    m.d.sync += [value.eq(END), store.eq(1)]
                with m.Elif(byte == ESC_ESC):
                    m.d.sync += [value.eq(ESC), store.eq(1)]
                with m.Else():
                    m.d.sync += bad_esc.eq(1)
            with m.Elif(byte == ESC):
                m.d.sync += esc.eq(1)
            with m.Else():
                m.d.sync += [value.eq(byte), store.eq(1)]

        with m.If(store):
            with m.If(count == max_body):
                m.d.sync += overflow.eq(1)
            with m.Else():
                m.d.sync += [count.eq(count + 1), crc.eq(crc16_update(crc, value))]
                with m.If(count == 0):
                    m.d.sync += cmd.eq(value)
                with m.Elif(count == 1):
                    m.d.sync += ident.eq(value)
                with m.Else():
                    m.d.sync += buf.eq(Cat(buf[8:], value))
        return m


class FrameEncoder(wiring.Component):
    """Wraps the bytes of ``i_byte`` (``last`` marks a frame's final byte) into frames on
    ``o_byte``: ``END``, the escaped bytes, the escaped CRC (high byte first), ``END``.

    Members
    -------
    i_byte : In(stream.Signature(StructLayout({"data": 8, "last": 1})))
    o_byte : Out(stream.Signature(8))
    """

    i_byte: In(stream.Signature(data.StructLayout({"data": 8, "last": 1})))
    o_byte: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16, init=0xFFFF)
        escaped = Signal()     # the ESC of the current byte has been sent
        # The input byte is first taken into a register, so ``i_byte.ready`` depends on one
        # flip-flop and the escape and CRC logic start from flip-flops.
        held = Signal()
        held_data = Signal(8)
        held_last = Signal()
        m.d.comb += self.i_byte.ready.eq(~held)
        with m.If(self.i_byte.valid & ~held):
            m.d.sync += [held.eq(1), held_data.eq(self.i_byte.payload.data),
                         held_last.eq(self.i_byte.payload.last)]

        cur = Signal(8)
        have = Signal()
        advance = Signal()
        o = self.o_byte

        with m.FSM():
            with m.State("START"):
                m.d.comb += [o.payload.eq(END), o.valid.eq(held)]
                with m.If(held & o.ready):
                    m.d.sync += crc.eq(0xFFFF)
                    m.next = "BODY"
            for state in ("BODY", "CRC_HI", "CRC_LO"):
                with m.State(state):
                    if state == "BODY":
                        m.d.comb += [cur.eq(held_data), have.eq(held)]
                    else:
                        m.d.comb += [cur.eq(crc[8:] if state == "CRC_HI" else crc[:8]),
                                     have.eq(1)]
                    with m.If(escaped):
                        m.d.comb += [o.payload.eq(Mux(cur == END, ESC_END, ESC_ESC)),
                                     o.valid.eq(1)]
                        with m.If(o.ready):
                            m.d.sync += escaped.eq(0)
                            m.d.comb += advance.eq(1)
                    with m.Elif((cur == END) | (cur == ESC)):
                        m.d.comb += [o.payload.eq(ESC), o.valid.eq(have)]
                        with m.If(have & o.ready):
                            m.d.sync += escaped.eq(1)
                    with m.Else():
                        m.d.comb += [o.payload.eq(cur), o.valid.eq(have)]
                        m.d.comb += advance.eq(have & o.ready)
                    with m.If(advance):
                        if state == "BODY":
                            m.d.sync += [held.eq(0), crc.eq(crc16_update(crc, cur))]
                            with m.If(held_last):
                                m.next = "CRC_HI"
                        else:
                            m.next = "CRC_LO" if state == "CRC_HI" else "TAIL"
            with m.State("TAIL"):
                m.d.comb += [o.payload.eq(END), o.valid.eq(1)]
                with m.If(o.ready):
                    m.next = "START"
        return m


class Bridge(wiring.Component):
    """Frames from a byte stream to the accelerator and replies back (one frame at a time).

    Parameters
    ----------
    params : AccelParams
        The accelerator's parameters (reported by PARAMS, and the payload sizes).
    clock_hz : int
        The accelerator clock, reported by PARAMS (0: unknown).
    rx_buffer : int
        Bytes of the receive buffer (reported by PARAMS); smaller than
        :data:`~boards.protocol.RX_BUFFER` only for formal proofs, which need a small state space.

    Members
    -------
    i_rx : In(stream.Signature(8))
        Received bytes (always ready: a byte arriving when the receive buffer is full is dropped
        and counted).
    o_tx : Out(stream.Signature(8))
        Bytes to transmit.
    o_load : Out(stream.Signature(load_layout(params)))
    o_query : Out(stream.Signature(n))
    i_result : In(stream.Signature(result_layout(params)))
    o_loaded, o_busy, o_error : Out(1)
        A LOAD was executed since reset; a query is in the accelerator; the last frame got an
        ERROR reply (for LEDs).
    """

    def __init__(self, params: AccelParams, clock_hz=0, rx_buffer=RX_BUFFER):
        if not isinstance(params, AccelParams):
            raise TypeError(f"params must be an AccelParams, not {params!r}")
        self._params = params
        self._format = LinkFormat(params, clock_hz, rx_buffer)
        super().__init__({
            "i_rx": In(stream.Signature(8)),
            "o_tx": Out(stream.Signature(8)),
            "o_load": Out(stream.Signature(load_layout(params))),
            "o_query": Out(stream.Signature(params.n)),
            "i_result": In(stream.Signature(result_layout(params))),
            "o_loaded": Out(1),
            "o_busy": Out(1),
            "o_error": Out(1),
        })

    @property
    def link_format(self):
        return self._format

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        prm = self._params
        mp = fmt.max_payload
        m.submodules.rx_buffer = rx_buffer = SyncFIFOBuffered(width=8, depth=fmt.rx_buffer)
        m.submodules.parser = parser = FrameParser(mp)
        m.submodules.encoder = encoder = FrameEncoder()
        m.d.comb += [rx_buffer.w_data.eq(self.i_rx.payload), rx_buffer.w_en.eq(self.i_rx.valid),
                     self.i_rx.ready.eq(1)]
        # A register between the buffer and the parser: the block RAM's output (no output
        # register on the ECP5) goes into a flip-flop, not into the parser's logic.
        held = parser.i_byte
        m.d.comb += rx_buffer.r_en.eq(~held.valid | held.ready)
        with m.If(rx_buffer.r_en & rx_buffer.r_rdy):
            m.d.sync += [held.valid.eq(1), held.payload.eq(rx_buffer.r_data)]
        with m.Elif(held.ready):
            m.d.sync += held.valid.eq(0)
        wiring.connect(m, encoder.o_byte, wiring.flipped(self.o_tx))

        frame = parser.o_frame.payload

        def payload(length):
            """The request payload of ``length`` bytes (little-endian integer)."""
            return frame.data[8 * (mp - length):8 * mp]

        # Counters of STATUS.
        frames, errors, overruns, loads, queries = (Signal(16, name=n) for n in (
            "frames", "errors", "overruns", "loads", "queries"))
        loaded = Signal()
        m.d.comb += [self.o_loaded.eq(loaded)]
        with m.If(self.i_rx.valid & ~rx_buffer.w_rdy):
            m.d.sync += overruns.eq(overruns + 1)

        # Reply: command byte and payload bytes, sent from one wide value.
        kinds = {"error": payload_bytes(ERROR_LAYOUT), "status": payload_bytes(STATUS_LAYOUT),
                 "params": len(fmt.params_payload()), "ack": 0, "result": fmt.result_bytes}
        reply_bytes = HEADER_BYTES + max(kinds.values())
        reply = Signal(8 * reply_bytes)
        reply_len = Signal(range(reply_bytes + 1))
        kind = Signal(range(len(kinds)))
        kind_index = {k: i for i, k in enumerate(kinds)}
        code = Signal(3)
        idle = Signal()
        m.d.comb += idle.eq(self.o_load.ready)

        params_value = int.from_bytes(fmt.params_payload(), "little")
        status_value = Signal(STATUS_LAYOUT)
        m.d.comb += [status_value.idle.eq(idle),
                     status_value.loaded.eq(loaded), status_value.frames.eq(frames),
                     status_value.errors.eq(errors), status_value.overruns.eq(overruns),
                     status_value.loads.eq(loads), status_value.queries.eq(queries)]
        error_value = Signal(ERROR_LAYOUT)
        m.d.comb += [error_value.code.eq(code), error_value.first.eq(frame.cmd)]
        ident = frame.id
        with m.Switch(kind):
            with m.Case(kind_index["error"]):
                m.d.comb += reply.eq(Cat(Const(ERROR, 8), ident, error_value))
            with m.Case(kind_index["status"]):
                m.d.comb += reply.eq(Cat(Const(Command.STATUS | REPLY, 8), ident, status_value))
            with m.Case(kind_index["params"]):
                m.d.comb += reply.eq(Cat(Const(Command.PARAMS | REPLY, 8), ident,
                                         Const(params_value, 8 * kinds["params"])))
            with m.Case(kind_index["ack"]):
                m.d.comb += reply.eq(Cat(Const(Command.LOAD | REPLY, 8), ident))
            with m.Case(kind_index["result"]):
                m.d.comb += reply.eq(Cat(Const(Command.QUERY | REPLY, 8), ident,
                                         self.i_result.payload.as_value()))
        with m.Switch(kind):
            for k, size in kinds.items():
                with m.Case(kind_index[k]):
                    m.d.comb += reply_len.eq(HEADER_BYTES + size)

        # The reply bytes reach the encoder through a register slice: the wide reply
        # multiplexer and the encoder's escape and CRC logic are in different cycles (and the
        # encoder's ready is a flip-flop).
        index = Signal(range(reply_bytes + 1))
        sending = Signal()
        tx = encoder.i_byte
        with m.If(~tx.valid | tx.ready):
            m.d.sync += [tx.valid.eq(sending), tx.payload.data.eq(reply.word_select(index, 8)),
                         tx.payload.last.eq(index == reply_len - 1)]
            with m.If(sending):
                m.d.sync += index.eq(index + 1)

        lengths = fmt.request_lengths
        m.d.comb += [self.o_load.payload.eq(payload(fmt.load_bytes)[:fmt.load_bits]),
                     self.o_query.payload.eq(payload(fmt.query_bytes)[:prm.n])]
        # A LOAD address must be below its memory's depth (:attr:`LinkFormat.load_depths`).
        # The compare is registered, and a frame is decided one cycle after it is presented
        # (its payload holds until it is taken), so the compare's carry chain and the
        # decision's logic are in different cycles.
        address_ok = Signal()
        with m.Switch(self.o_load.payload.target):
            for target, depth in fmt.load_depths.items():
                with m.Case(target):
                    m.d.sync += address_ok.eq(self.o_load.payload.addr < depth)
        frame_seen = Signal()
        m.d.sync += frame_seen.eq(parser.o_frame.valid & ~parser.o_frame.ready)

        def send(k):
            return [kind.eq(kind_index[k]), index.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(parser.o_frame.valid & frame_seen):
                    m.next = "SEND"
                    with m.If(frame.error != 0):
                        m.d.sync += [*send("error"), code.eq(frame.error)]
                    with m.Else():
                        with m.Switch(frame.cmd):
                            for cmd, length in lengths.items():
                                with m.Case(cmd):
                                    with m.If(frame.length != HEADER_BYTES + length + 2):
                                        m.d.sync += [*send("error"),
                                                     code.eq(ErrorCode.LENGTH)]
                                    if cmd == Command.LOAD:
                                        with m.Elif(~address_ok):
                                            m.d.sync += [*send("error"),
                                                         code.eq(ErrorCode.ADDRESS)]
                                    with m.Else():
                                        m.d.sync += frames.eq(frames + 1)
                                        if cmd == Command.STATUS:
                                            m.d.sync += send("status")
                                        elif cmd == Command.PARAMS:
                                            m.d.sync += send("params")
                                        elif cmd == Command.LOAD:
                                            m.d.sync += send("ack")
                                            m.next = "LOAD"
                                        else:
                                            m.d.sync += send("result")
                                            m.next = "QUERY"
                            with m.Default():
                                m.d.sync += [*send("error"), code.eq(ErrorCode.COMMAND)]
            with m.State("LOAD"):
                m.d.comb += self.o_load.valid.eq(1)
                with m.If(self.o_load.ready):
                    m.d.sync += [loads.eq(loads + 1), loaded.eq(1)]
                    m.next = "SEND"
            with m.State("QUERY"):
                m.d.comb += [self.o_query.valid.eq(1), self.o_busy.eq(1)]
                with m.If(self.o_query.ready):
                    m.d.sync += queries.eq(queries + 1)
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.o_busy.eq(1)
                with m.If(self.i_result.valid):
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += sending.eq(~(tx.valid & tx.payload.last))
                with m.If(tx.valid & tx.ready & tx.payload.last):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [parser.o_frame.ready.eq(1),
                             self.i_result.ready.eq(kind == kind_index["result"])]
                with m.If(kind == kind_index["error"]):
                    m.d.sync += [errors.eq(errors + 1), self.o_error.eq(1)]
                with m.Else():
                    m.d.sync += self.o_error.eq(0)
                m.next = "IDLE"
        return m
