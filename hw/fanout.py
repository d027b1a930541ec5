"""Copies of broadcast registers, one per group of lanes (the one home of the group size).

A register read by every lane drives a net spanning the whole MAC array and sign update; on the
ECP5 a select driving 100 lanes' adders spent 8.9 ns in routing. Such registers are kept in one
copy per :data:`FANOUT_LANES` lanes, each driving its own group. The copies are named with
:data:`FANOUT_COPY`, which the board builds use to tell Yosys to keep them apart (it merges
equal flip-flops otherwise: :data:`khop.boards.build.KEEP_FANOUT_COPIES`).
"""

__all__ = ["FANOUT_LANES", "FANOUT_COPY", "fanout_groups"]

FANOUT_LANES = 8
FANOUT_COPY = "fanout_copy"


def fanout_groups(lanes):
    """The number of copies for ``lanes`` lanes: ``ceil(lanes / FANOUT_LANES)``."""
    return -(-lanes // FANOUT_LANES)
