"""The top of the retrieval accelerator: memories, kernel distance, MAC array, sign-update FSM."""

import numpy as np
from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .kernel_distance import KernelDistance
from .layout import LoadTarget, load_layout, result_layout
from .mac_array import MacArray
from .params import AccelParams
from .pattern_memory import PatternMemory
from .sign_update import SignUpdate
from .weight_memory import WeightMemory

__all__ = ["RetrievalAccelerator"]


class RetrievalAccelerator(wiring.Component):
    """Streaming kernel Hopfield retrieval accelerator.

    Every query accepted on ``i_query`` (bit i = neuron i, 1 means +1) yields exactly one result
    on ``o_result``, in order, whatever the backpressure. ``i_load`` writes pattern words, weight
    words, lookup-table entries and the threshold constant (layout in :mod:`hw.layout`); it is
    accepted only while no query runs (``ready`` is low otherwise), and a load waiting in IDLE
    takes precedence over a waiting query, so a load never corrupts a query.

    Cycle model: one step costs :attr:`AccelParams.cycles_per_step` cycles, a query
    ``steps * cycles_per_step`` (:meth:`AccelParams.cycles_per_query`): the clock edges after
    the one that transfers the query until its result's ``valid`` is seen.

    Parameters
    ----------
    params : AccelParams
    network : model.fixed.IntegerNetwork or None
        Initial memory contents; ``None`` leaves them zero until loaded through ``i_load``.
        Memories and the threshold keep their contents through a reset.
    fault : str or None
        Test only: inject a known bug (see :data:`hw.sign_update.FAULTS`) so a testbench can
        show that its checks fail. Never set it for real hardware.
    weight_memory : callable or None
        ``weight_memory(params, codes)`` builds the weight memory: a component with the
        ``read``/``write`` members of :class:`hw.weight_memory.WeightMemory` and its timing
        (``codes`` is ``None`` when ``network`` is). ``None`` means :class:`WeightMemory`. Board
        tops use it to put the weights into a device's own RAM (e.g. iCE40 SPRAM).

    Members
    -------
    i_query : In(stream.Signature(n))
    o_result : Out(stream.Signature(StructLayout({"state": n, "steps": 8, "converged": 1})))
    i_load : In(stream.Signature(StructLayout({"target": 2, "addr": ..., "data": ...})))
    """

    def __init__(self, params: AccelParams, network=None, *, fault=None, weight_memory=None):
        if not isinstance(params, AccelParams):
            raise TypeError(f"params must be an AccelParams, not {params!r}")
        self._params = params
        self._network = network
        self._fault = fault
        self._weight_memory = WeightMemory if weight_memory is None else weight_memory
        if network is not None:
            self._check_network(network)
        super().__init__({
            "i_query": In(stream.Signature(params.n)),
            "o_result": Out(stream.Signature(result_layout(params))),
            "i_load": In(stream.Signature(load_layout(params))),
        })

    def _check_network(self, net):
        prm = self._params
        if (net.p, net.n) != (prm.p, prm.n):
            raise ValueError(f"the network is p={net.p}, n={net.n} but the accelerator is built "
                             f"for p={prm.p}, n={prm.n}")
        for name in ("weight_bits", "kernel_bits", "threshold_frac_bits"):
            if getattr(net.config, name) != getattr(prm, name):
                raise ValueError(f"the network has {name}={getattr(net.config, name)} but the "
                                 f"accelerator is built for {name}={getattr(prm, name)}")

    @property
    def params(self):
        return self._params

    @property
    def cycles_per_step(self):
        return self._params.cycles_per_step

    @property
    def memory_bits(self):
        return self._params.memory_bits

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        net = self._network

        m.submodules.patterns = pmem = PatternMemory(prm, None if net is None else net.patterns)
        m.submodules.weights = wmem = self._weight_memory(prm,
                                                          None if net is None else net.codes)
        m.submodules.distance = dist = KernelDistance(prm, None if net is None else net.lut)
        m.submodules.mac = mac = MacArray(prm)
        m.submodules.fsm = fsm = SignUpdate(prm, fault=self._fault)

        r_init = 0 if net is None else int(np.int64(net.r_fx))
        # Like the memories, the threshold keeps its contents through a reset.
        threshold = Signal(signed(prm.threshold_bits), init=r_init, reset_less=True)

        wiring.connect(m, dist.patterns, pmem.read)
        wiring.connect(m, mac.weights, wmem.read)
        wiring.connect(m, dist.o_kernel, mac.i_kernel)
        wiring.connect(m, mac.o_sums, fsm.i_sums)
        wiring.connect(m, wiring.flipped(self.i_query), fsm.i_query)
        wiring.connect(m, fsm.o_result, wiring.flipped(self.o_result))
        m.d.comb += [
            dist.i_start.eq(fsm.o_start),
            mac.i_start.eq(fsm.o_start),
            dist.i_state.eq(fsm.o_state),
            fsm.i_sum_k.eq(mac.o_sum_k),
            fsm.i_threshold.eq(threshold),
        ]

        # Load port: accepted only while the FSM is idle; a waiting load holds queries off.
        load = self.i_load.payload
        accept = Signal()
        m.d.comb += [
            self.i_load.ready.eq(fsm.o_idle),
            fsm.i_hold.eq(self.i_load.valid),
            accept.eq(self.i_load.valid & fsm.o_idle),
        ]
        for port in (pmem.write, wmem.write, dist.lut_write):
            m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data)]
        m.d.comb += [
            pmem.write.en.eq(accept & (load.target == LoadTarget.PATTERN)),
            wmem.write.en.eq(accept & (load.target == LoadTarget.WEIGHT)),
            dist.lut_write.en.eq(accept & (load.target == LoadTarget.LUT)),
        ]
        with m.If(accept & (load.target == LoadTarget.THRESHOLD)):
            m.d.sync += threshold.eq(load.data[:prm.threshold_bits])
        return m
