"""Real FPGA boards: the UART frame protocol and its host driver, the UART and frame-bridge
hardware, board tops (iCEBreaker, ULX3S 85F) and bitstream builds through YoWASP.

Modules: :mod:`~boards.protocol` (framing, CRC, payloads; pure Python), :mod:`~boards.host`
(``Device``, pyserial or any transport), :mod:`~boards.emulator` (the bridge's executable
specification), :mod:`~boards.uart`, :mod:`~boards.bridge`, :mod:`~boards.core`,
:mod:`~boards.spram`, :mod:`~boards.pll`, :mod:`~boards.top`, :mod:`~boards.build`,
:mod:`~boards.cosim` and :mod:`~boards.tb_board` (cocotb).
"""
