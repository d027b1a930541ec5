"""The framed UART protocol: CRC, SLIP framing, the decoder's checks, payload packing."""

import random
import struct

import pytest

from khop.boards.protocol import (
    END,
    ESC,
    ESC_END,
    ESC_ESC,
    PARAMS_FORMAT,
    RX_BUFFER,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    LinkFormat,
    ProtocolError,
    Status,
    check_request,
    crc16,
    encode_frame,
    slip_escape,
    wire_bytes,
)
from khop.hw.params import hardware_params

PARAMS = hardware_params(24, 30, bits=2, lanes=8)


def test_crc16_is_ccitt_false_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_body_with_its_crc_has_crc_zero():
    frame = encode_frame(Command.QUERY, 0x5A, bytes(range(20)))
    body = bytes((Command.QUERY, 0x5A, *range(20)))
    crc = crc16(body)
    assert crc16(body + bytes((crc >> 8, crc & 0xFF))) == 0
    assert FrameDecoder().feed(frame) == [Frame(Command.QUERY, 0x5A, bytes(range(20)))]


def test_slip_escapes_end_and_esc_only():
    assert slip_escape(bytes((1, END, 2, ESC, 3))) == bytes((1, ESC, ESC_END, 2, ESC, ESC_ESC, 3))
    wire = encode_frame(Command.LOAD, END, bytes((END, ESC, END)))
    assert wire[0] == END and wire[-1] == END and END not in wire[1:-1]
    assert len(wire) <= wire_bytes(3)   # the bound: every body byte (cmd, id, payload, CRC) escaped


@pytest.mark.parametrize("seed", range(5))
def test_random_frames_round_trip(seed):
    rng = random.Random(seed)
    dec = FrameDecoder()
    sent, wire = [], b""
    for _ in range(50):
        payload = bytes(rng.choice([END, ESC, 0, 255, rng.randrange(256)])
                        for _ in range(rng.randrange(40)))
        cmd, ident = rng.randrange(256), rng.choice([END, ESC, rng.randrange(256)])
        sent.append(Frame(cmd, ident, payload))
        wire += encode_frame(cmd, ident, payload)
    # Split the byte stream at random points: the decoder keeps its state between calls.
    events, i = [], 0
    while i < len(wire):
        j = i + rng.randrange(1, 9)
        events += dec.feed(wire[i:j])
        i = j
    assert events == sent


def test_empty_frames_are_ignored():
    assert FrameDecoder().feed(bytes((END, END, END))) == []


def test_bad_crc_is_reported_with_the_first_byte_and_the_id():
    wire = bytearray(encode_frame(Command.QUERY, 0x33, b"\x01\x02\x03"))
    wire[4] ^= 0x10
    assert FrameDecoder().feed(wire) == [FrameError(ErrorCode.CRC, Command.QUERY, 0x33)]


def test_truncated_frame():
    assert FrameDecoder().feed(bytes((END, 0x01, 0x02, 0x03, END))) == \
        [FrameError(ErrorCode.TRUNCATED, 0x01, 0x02)]
    assert FrameDecoder().feed(bytes((END, 0x01, END))) == \
        [FrameError(ErrorCode.TRUNCATED, 0x01, 0)]


def test_bad_escape():
    assert FrameDecoder().feed(bytes((END, 0x01, 0x07, ESC, 0x55, 0x00, 0x00, END))) == \
        [FrameError(ErrorCode.ESCAPE, 0x01, 0x07)]
    assert FrameDecoder().feed(bytes((0x02, ESC, END))) == [FrameError(ErrorCode.ESCAPE, 0x02)]


def test_overflow_beyond_max_payload():
    dec = FrameDecoder(max_payload=4)
    assert dec.feed(encode_frame(0x04, 9, bytes(4))) == [Frame(0x04, 9, bytes(4))]
    assert dec.feed(encode_frame(0x04, 9, bytes(5))) == [FrameError(ErrorCode.OVERFLOW, 0x04, 9)]


def test_host_decoder_bounds_garbage_without_end():
    """Bytes that never form a frame do not grow the host's buffer: past ``max_body`` they
    make the frame an OVERFLOW."""
    dec = FrameDecoder(max_body=16)
    assert dec.feed(bytes(range(1, 100)) * 100) == []
    assert len(dec._body) == 16
    assert dec.feed(bytes((END,))) == [FrameError(ErrorCode.OVERFLOW, 1, 2)]


def test_every_single_bit_flip_is_detected():
    frame = encode_frame(Command.LOAD, 0x21, bytes(range(1, 15)))
    for i in range(1, len(frame) - 1):
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            events = FrameDecoder(max_payload=14).feed(bad)
            assert all(isinstance(e, FrameError) for e in events), (i, bit, events)


@pytest.mark.parametrize("seed", range(10))
def test_fuzzed_garbage_then_a_good_frame_is_recovered(seed):
    """Whatever garbage precedes it, a frame sent after an END is decoded intact, and garbage
    only ever produces errors or (with probability ~2^-16 each) a frame."""
    rng = random.Random(seed)
    dec = FrameDecoder(max_payload=14)
    garbage = bytes(rng.choice([END, ESC, rng.randrange(256)]) for _ in range(rng.randrange(300)))
    events = dec.feed(garbage)
    assert sum(isinstance(e, Frame) for e in events) <= 1
    # The good frame's leading END closes the garbage (one event at most), then the frame
    # itself follows, intact.
    out = dec.feed(encode_frame(Command.STATUS, 0x2a))
    assert out[-1] == Frame(Command.STATUS, 0x2a, b"")
    assert len(out) <= 2 and all(isinstance(e, FrameError | Frame) for e in out[:-1])


def test_garbage_error_codes_are_always_known():
    rng = random.Random(1)
    dec = FrameDecoder(max_payload=8)
    for _ in range(2000):
        for ev in dec.feed(bytes((rng.randrange(256),))):
            if isinstance(ev, FrameError):
                assert ev.code in ErrorCode


def test_check_request_unknown_command_and_length():
    fmt = LinkFormat(PARAMS)
    assert check_request(fmt, Frame(0x55, 1, b"")) == ErrorCode.COMMAND
    assert check_request(fmt, Frame(Command.PARAMS, 1, b"\x00")) == ErrorCode.LENGTH
    assert check_request(fmt, Frame(Command.STATUS, 1, b"\x00")) == ErrorCode.LENGTH
    assert check_request(fmt, Frame(Command.STATUS, 1, b"")) is None
    assert check_request(fmt, Frame(Command.QUERY, 1, bytes(fmt.query_bytes))) is None
    assert check_request(fmt, Frame(Command.LOAD, 1, bytes(fmt.load_bytes - 1))) == \
        ErrorCode.LENGTH


@pytest.mark.parametrize("n", [24, 100])
def test_check_request_load_addresses_below_each_memorys_depth(n):
    """A LOAD address is checked against its own memory's depth (powers of two or not); the
    largest valid address passes, the next one is an ADDRESS error, as is every address up to
    the address field's limit."""
    from khop.hw.layout import LoadTarget
    prm = hardware_params(n, 3 * n, bits=2, lanes=8)
    fmt = LinkFormat(prm)
    for target, depth in fmt.load_depths.items():
        def check(addr, target=target):
            return check_request(fmt, Frame(Command.LOAD, 1, fmt.load_payload(target, addr, 0)))
        assert check(depth - 1) is None
        for addr in {depth, (1 << prm.load_addr_bits) - 1} - set(range(depth)):
            assert check(addr) == ErrorCode.ADDRESS, (target, addr, depth)
    assert fmt.load_depths[LoadTarget.WEIGHT] == prm.weight_depth


def test_link_format_sizes_follow_the_layouts():
    fmt = LinkFormat(hardware_params(100, 300, bits=2, lanes=16))
    # i_load payload: 2 + 12 address (2100 weight words) + 100 data bits;
    # o_result: 100 + 8 + 1 bits.
    assert (fmt.load_bits, fmt.load_bytes) == (114, 15)
    assert (fmt.query_bytes, fmt.result_bytes) == (13, 14)
    assert fmt.max_payload == 15


def test_params_round_trip_and_version_check():
    fmt = LinkFormat(PARAMS, clock_hz=30_000_000)
    back = LinkFormat.from_params_payload(fmt.params_payload())
    assert back.params == PARAMS and back.clock_hz == 30_000_000
    bad = bytearray(fmt.params_payload())
    bad[0] = 9
    with pytest.raises(ProtocolError, match="version 9"):
        LinkFormat.from_params_payload(bytes(bad))
    with pytest.raises(ProtocolError, match="bytes"):
        LinkFormat.from_params_payload(bytes(PARAMS_FORMAT.size - 1))
    assert back.rx_buffer == RX_BUFFER
    # The most LOAD frames that fit the receive buffer when every byte is escaped.
    assert back.window(Command.LOAD) == RX_BUFFER // wire_bytes(back.load_bytes)


def test_status_round_trip_wraps_counters():
    st = Status(True, False, 1, 2, 3, 4, 70000)
    # The wire format of STATUS_LAYOUT: flags (bit 0 idle, bit 1 loaded), 5 x u16 LE.
    assert st.to_payload() == struct.pack("<BHHHHH", 1, 1, 2, 3, 4, 70000 & 0xFFFF)
    back = Status.from_payload(st.to_payload())
    assert back == Status(True, False, 1, 2, 3, 4, 70000 & 0xFFFF)


def test_load_request_carries_the_pack_load_integer():
    from khop.hw.layout import LoadTarget, pack_load
    fmt = LinkFormat(PARAMS)
    [frame] = FrameDecoder().feed(fmt.load_request(77, LoadTarget.WEIGHT, 5, 0xBEEF))
    assert (frame.cmd, frame.id) == (Command.LOAD, 77)
    assert int.from_bytes(frame.payload, "little") == pack_load(PARAMS, LoadTarget.WEIGHT, 5,
                                                                0xBEEF)
