"""Seeded random link traffic for the fuzz tests: byte sequences of valid, invalid and damaged
frames and garbage, as a noisy serial line and a careless or hostile host produce them.

:func:`link_sequence` is what the emulator (:class:`boards.emulator.EmulatedDevice`) and the
hardware (the Amaranth simulation and the Verilator board core) are fed, byte for byte the same;
:class:`NoisyLine` puts a damaging line between the host driver and a device.
"""

from khop.hw.layout import LoadTarget

from .protocol import END, ESC, Command, LinkFormat, encode_frame

__all__ = ["MAX_SEQUENCE", "KINDS", "link_sequence", "load_bursts", "NoisyLine"]

#: Bytes of a sequence at most: less than the receive buffer, so it never overflows.
MAX_SEQUENCE = 320
#: What a sequence is made of (:func:`link_sequence`).
KINDS = ("status", "params", "query", "load", "load-random", "load-address", "length",
         "command", "damaged", "garbage", "empty")


def _garbage(rng, size):
    return bytes(rng.choice((END, ESC, rng.randrange(256))) for _ in range(size))


def _damage(rng, frame):
    """``frame`` with one random defect: bits flipped, a byte deleted, inserted or duplicated,
    the tail cut off, or the closing END lost."""
    b = bytearray(frame)
    how = rng.randrange(6)
    i = rng.randrange(1, len(b) - 1) if len(b) > 2 else 0
    if how == 0:
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == 1:
        del b[i]
    elif how == 2:
        b.insert(i, rng.randrange(256))
    elif how == 3:
        b.insert(i, b[i])
    elif how == 4:
        del b[i:]
    else:
        del b[-1]
    return bytes(b)


def link_sequence(rng, fmt: LinkFormat, words=(), items=None):
    """One random byte sequence of at most :data:`MAX_SEQUENCE` bytes.

    Parameters
    ----------
    rng : random.Random
    fmt : LinkFormat
        The device's payload sizes and memory depths.
    words : sequence of (LoadTarget, addr, data)
        Writes of a real network (:func:`khop.hw.layout.load_words`): most LOADs rewrite one of
        these, the others write random data at a random valid address.
    items : int or None
        Frames and garbage pieces (default 1 to 6).
    """
    out = bytearray()
    for _ in range(items or rng.randint(1, 6)):
        kind = rng.choice(KINDS)
        ident = rng.randrange(256)
        depths = fmt.load_depths
        if kind == "status":
            piece = encode_frame(Command.STATUS, ident)
        elif kind == "params":
            piece = encode_frame(Command.PARAMS, ident)
        elif kind == "query":
            piece = fmt.query_request(ident, rng.getrandbits(8 * fmt.query_bytes))
        elif kind == "load" and words:
            piece = fmt.load_request(ident, *rng.choice(words))
        elif kind in ("load", "load-random"):
            target = rng.choice(list(LoadTarget))
            data = rng.getrandbits(fmt.params.load_data_bits)
            piece = fmt.load_request(ident, target, rng.randrange(depths[target]), data)
        elif kind == "load-address":
            target = rng.choice([t for t in LoadTarget
                                 if depths[t] < 1 << fmt.params.load_addr_bits])
            addr = rng.randrange(depths[target], 1 << fmt.params.load_addr_bits)
            piece = fmt.load_request(ident, target, addr, rng.getrandbits(8))
        elif kind == "length":
            cmd = rng.choice(list(Command))
            length = fmt.request_lengths[cmd] + rng.choice((-2, -1, 1, 2))
            piece = encode_frame(cmd, ident, bytes(rng.getrandbits(8)
                                                   for _ in range(max(0, length))))
        elif kind == "command":
            cmd = rng.choice([c for c in range(256) if c not in set(Command)])
            piece = encode_frame(cmd, ident, bytes(rng.randrange(4)))
        elif kind == "damaged":
            piece = _damage(rng, fmt.query_request(ident, rng.getrandbits(8 * fmt.query_bytes))
                            if rng.random() < 0.5 else encode_frame(Command.STATUS, ident))
        elif kind == "garbage":
            piece = _garbage(rng, rng.randint(1, 40))
        else:
            piece = bytes((END,)) * rng.randint(1, 3)
        if len(out) + len(piece) > MAX_SEQUENCE:
            break
        out += piece
    return bytes(out)


def load_bursts(fmt: LinkFormat, words):
    """The LOAD frames of ``words`` ((LoadTarget, addr, data) writes) in bursts of at most
    :meth:`LinkFormat.window` frames, so that a burst sent at full line rate fits the device's
    receive buffer; the request ids count from 0, modulo 256."""
    step = fmt.window(Command.LOAD)
    for start in range(0, len(words), step):
        yield b"".join(fmt.load_request((start + j) & 0xFF, *w)
                       for j, w in enumerate(words[start:start + step]))


class NoisyLine:
    """A transport between the host driver and a device transport (``write``/``read``, and
    ``clock`` if it has one) that damages the traffic both ways: each byte is flipped, dropped,
    or followed by a random byte with probability ``rate``, and a reply may be repeated later
    (a stale duplicate).

    Parameters
    ----------
    device : object
        The device side (e.g. :class:`~boards.emulator.EmulatedDevice`).
    rng : random.Random
    rate : float
        Probability of a defect per byte.
    """

    def __init__(self, device, rng, rate):
        self.device, self.rng, self.rate = device, rng, rate
        self.clock = getattr(device, "clock", None)
        self.damaged = 0
        self._replay = b""

    def _noisy(self, data):
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r >= self.rate:
                out.append(b)
                continue
            self.damaged += 1
            kind = self.rng.randrange(3)
            if kind == 0:
                out.append(b ^ (1 << self.rng.randrange(8)))
            elif kind == 2:
                out += bytes((b, self.rng.randrange(256)))
        return bytes(out)

    def write(self, data):
        self.device.write(self._noisy(data))
        return len(data)

    def read(self, size=1):
        data = self.device.read(size)
        if data and self.rng.random() < self.rate * 10:
            self._replay = data
        elif not data and self._replay and self.rng.random() < 0.5:
            data, self._replay = self._replay, b""
        return self._noisy(data)

    @property
    def in_waiting(self):
        return getattr(self.device, "in_waiting", 0)
