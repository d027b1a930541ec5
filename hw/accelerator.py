"""The top of the retrieval accelerator: memories, kernel distance, MAC array, sign-update FSM."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .kernel_distance import KernelDistance
from .layout import LoadTarget, load_layout, result_layout
from .mac_array import MacArray
from .params import AccelParams
from .pattern_memory import PatternMemory
from .sign_update import SignUpdate
from .threshold_memory import ThresholdMemory
from .weight_memory import WeightMemory

__all__ = ["RetrievalAccelerator"]


class RetrievalAccelerator(wiring.Component):
    """Streaming kernel Hopfield retrieval accelerator.

    Every query accepted on ``i_query`` (bit i = neuron i, 1 means +1) yields exactly one result
    on ``o_result``, in order, whatever the backpressure. ``i_load`` writes pattern words, weight
    words, lookup-table entries and threshold words (the thresholds of a group of lanes each;
    layout in :mod:`khop.hw.layout`).

    Priority: a load is accepted only while no query is held (``i_load.ready`` is low from a
    query's transfer until the last result in flight is taken), and a load offered holds
    ``i_query.ready`` low, so on the same edge the load wins and a load never corrupts a
    query.

    Reset (synchronous): a running query and a result waiting for ``ready`` are dropped; the
    memories (thresholds included) keep their contents.

    Up to ``params.batch`` queries are in flight, each in a slot of the sign-update
    controller; every pattern and weight read serves all of them, and results leave in the
    order the queries came (:class:`khop.hw.sign_update.SignUpdate`).

    Cycle model: one step costs :attr:`AccelParams.cycles_per_step` cycles; for a query that
    finds the accelerator idle ``o_result.valid`` rises just after the edge
    :meth:`AccelParams.cycles_per_query` (``join_cycles + steps * cycles_per_step``) edges
    after the one that transferred the query; with queries in flight, :mod:`khop.hw.timing`
    gives every edge.

    Parameters
    ----------
    params : AccelParams
    network : khop.model.fixed.IntegerNetwork or None
        Initial memory contents; ``None`` leaves them zero until loaded through ``i_load``.
        Memories keep their contents through a reset.
    fault : str or None
        Test only: inject a known bug (see :data:`khop.hw.sign_update.FAULTS`) so a testbench can
        show that its checks fail. Never set it for real hardware.
    weight_memory : callable or None
        ``weight_memory(params, codes)`` builds the weight memory: a component with the
        ``read``/``write`` members of :class:`khop.hw.weight_memory.WeightMemory` and its timing
        (``codes`` is ``None`` when ``network`` is). ``None`` means :class:`WeightMemory`. Board
        tops use it to put the weights into a device's own RAM (e.g. iCE40 SPRAM).

    Members
    -------
    i_query : In(stream.Signature(n))
    o_result : Out(stream.Signature(result_layout(params)))
    i_load : In(stream.Signature(load_layout(params)))
    """

    def __init__(self, params: AccelParams, network=None, *, fault=None, weight_memory=None):
        if not isinstance(params, AccelParams):
            raise TypeError(f"params must be an AccelParams, not {params!r}")
        self._params = params
        self._network = network
        self._fault = fault
        self._weight_memory = WeightMemory if weight_memory is None else weight_memory
        if network is not None:
            params.check_network(network)
        super().__init__({
            "i_query": In(stream.Signature(params.n)),
            "o_result": Out(stream.Signature(result_layout(params))),
            "i_load": In(stream.Signature(load_layout(params))),
        })

    @property
    def params(self):
        """The :class:`AccelParams` it was built for (every figure of the design is there)."""
        return self._params

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
        m.submodules.thresholds = tmem = ThresholdMemory(prm, None if net is None else net.r_fx)

        wiring.connect(m, dist.patterns, pmem.read)
        wiring.connect(m, fsm.thresholds, tmem.read)
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
        ]

        # Load port: accepted only while the FSM is idle; a waiting load holds queries off.
        load = self.i_load.payload
        accept = Signal()
        m.d.comb += [
            self.i_load.ready.eq(fsm.o_idle),
            fsm.i_hold.eq(self.i_load.valid),
            accept.eq(self.i_load.valid & fsm.o_idle),
        ]
        for port in (pmem.write, wmem.write, dist.lut_write, tmem.write):
            m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data)]
        m.d.comb += [
            pmem.write.en.eq(accept & (load.target == LoadTarget.PATTERN)),
            wmem.write.en.eq(accept & (load.target == LoadTarget.WEIGHT)),
            dist.lut_write.en.eq(accept & (load.target == LoadTarget.LUT)),
            tmem.write.en.eq(accept & (load.target == LoadTarget.THRESHOLD)),
        ]
        return m
