"""Memory port signatures shared by the memories and the units that read them."""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ReadPortSignature", "WritePortSignature"]


class ReadPortSignature(wiring.Signature):
    """Synchronous read port, from the reader's side: ``data`` holds the word at ``addr`` one
    cycle after a cycle with ``en`` high; while ``en`` is low ``data`` keeps its value."""

    def __init__(self, addr_width, data_width):
        super().__init__({"addr": Out(addr_width), "en": Out(1), "data": In(data_width)})


class WritePortSignature(wiring.Signature):
    """Synchronous write port, from the writer's side: ``data`` is written at ``addr`` on a cycle
    with ``en`` high."""

    def __init__(self, addr_width, data_width):
        super().__init__({"addr": Out(addr_width), "en": Out(1), "data": Out(data_width)})
