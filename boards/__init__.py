"""Real FPGA boards and the synthesis flow: the UART frame protocol and its host driver, the
UART and frame-bridge hardware, board tops (iCEBreaker, ULX3S 85F), the target table, bitstream
builds through YoWASP, and resource estimation, calibration and sweeps.

Modules: :mod:`~boards.protocol` (framing, CRC, payloads; pure Python), :mod:`~boards.host`
(``Device``, pyserial or any transport; ``khop run``), :mod:`~boards.emulator` (the bridge's
executable specification), :mod:`~boards.uart`, :mod:`~boards.bridge`, :mod:`~boards.core`,
:mod:`~boards.spram`, :mod:`~boards.pll`, :mod:`~boards.top`, :mod:`~boards.targets` (devices,
boards, their clocks and default geometry), :mod:`~boards.build`, :mod:`~boards.estimate`
(resource model, ``calibration.json``), :mod:`~boards.calibrate`, :mod:`~boards.sweep`,
:mod:`~boards.sweep_report`, :mod:`~boards.sweep_plots`, :mod:`~boards.cosim` and
:mod:`~boards.tb_board` (cocotb).
"""
