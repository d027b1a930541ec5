"""The SPRAM weight memory's sizing and the accelerator's ``weight_memory`` knob that puts it in.

The SPRAM's behaviour (with Yosys' SB_SPRAM256KA model) is checked end to end in
``test_board_cosim.py``."""

import pytest
from amaranth.back import rtlil

from khop.boards.spram import SPRAMWeightMemory, check_spram_fit, spram_blocks
from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.params import hardware_params
from khop.hw.weight_memory import WeightMemory


def test_spram_blocks_of_memory_shapes():
    assert spram_blocks(2100, 32) == (2, 1)      # ridge, 16 lanes x 2 bits
    assert spram_blocks(3900, 16) == (1, 1)      # ridge, 8 lanes
    assert spram_blocks(16385, 16) == (1, 2)
    assert check_spram_fit(hardware_params(100, 300, bits=2, lanes=8)) == 1
    with pytest.raises(ValueError, match=r"needs 8 SPRAM blocks, the UP5K has 4 \(4 short\)"):
        check_spram_fit(hardware_params(256, 768, bits=2, lanes=64))


def test_accelerator_builds_its_weight_memory_with_the_factory():
    params = hardware_params(8, 4, bits=2, lanes=4)
    calls = []

    def factory(prm, codes):
        calls.append((prm, codes))
        return WeightMemory(prm, codes)

    rtlil.convert(RetrievalAccelerator(params, weight_memory=factory))
    assert calls == [(params, None)]


def test_spram_weight_memory_instantiates_one_block_per_16_bits():
    params = hardware_params(100, 300, bits=2, lanes=16)
    text = rtlil.convert(RetrievalAccelerator(params, weight_memory=SPRAMWeightMemory))
    assert text.count("cell \\SB_SPRAM256KA") == 2
