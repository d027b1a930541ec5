"""What the host hands to the cocotb side: the run configuration and the integer network.

The runner (:mod:`khop.sim.runner`) passes a :class:`CosimConfig` to the simulator process
through ``extra_env`` (variables ``KHOP_COSIM_*``); :mod:`khop.sim.test_khop_top` reads it back with
:meth:`CosimConfig.from_env`. The integer network travels as an ``.npz`` file written by
:func:`save_integer_network`.
"""

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, IntegerNetwork
from khop.outputs import atomic_path

__all__ = ["SCENARIOS", "FLOWS", "CosimConfig", "save_integer_network", "load_integer_network",
           "ENV_PREFIX"]

#: Scenarios of :mod:`khop.sim.test_khop_top`, in the order they run.
SCENARIOS = ("noisy", "random", "stored", "back_to_back", "reset", "reload")

#: Idle/backpressure modes (:func:`khop.sim.testbench.flow_patterns`): none, fixed
#: ``itertools.cycle`` patterns, seeded random, heavy seeded random.
FLOWS = ("none", "cycle", "random", "heavy")

ENV_PREFIX = "KHOP_COSIM_"


@dataclass
class CosimConfig:
    """One cosimulation run, as the cocotb side sees it.

    Parameters
    ----------
    params : khop.hw.params.AccelParams
        The configuration of the generated design (travels as :meth:`AccelParams.as_dict`).
    network : str
        Path of the integer network (``.npz`` of :func:`save_integer_network`) the design was
        generated with (its memories' initial contents).
    seed : int
        Seed of every random choice (queries, idle cycles, backpressure).
    queries : int
        Noisy queries per flow in the ``noisy`` scenario (the other scenarios scale from it).
    noise : float
        Fraction of the bits flipped in a noisy query.
    scenarios : list of str
        Subset of :data:`SCENARIOS`.
    flows : list of str
        Subset of :data:`FLOWS`, the idle/backpressure modes each scenario runs with.
    summary : str
        JSON file the cocotb side writes its figures into (after every scenario).
    progress : str
        Small text file ``"done total"`` updated while results arrive; empty for none.
    """

    params: AccelParams
    network: str
    seed: int = 0
    queries: int = 300
    noise: float = 0.2
    scenarios: list = field(default_factory=lambda: list(SCENARIOS))
    flows: list = field(default_factory=lambda: list(FLOWS))
    summary: str = ""
    progress: str = ""

    def __post_init__(self):
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            raise ValueError(f"unknown scenario {bad[0]!r}; scenarios are {', '.join(SCENARIOS)}")
        bad = [f for f in self.flows if f not in FLOWS]
        if bad:
            raise ValueError(f"unknown flow {bad[0]!r}; flows are {', '.join(FLOWS)}")
        if not self.flows:
            raise ValueError("at least one flow is needed")

    def as_dict(self):
        """``{field: value}`` with the parameters as :meth:`AccelParams.as_dict` (JSON-ready)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["params"] = self.params.as_dict()
        d["scenarios"], d["flows"] = list(self.scenarios), list(self.flows)
        return d

    def to_env(self):
        """The ``extra_env`` mapping for :meth:`cocotb_tools.runner.Runner.test`."""
        d = self.as_dict()
        return {
            ENV_PREFIX + "PARAMS": json.dumps(d["params"], sort_keys=True),
            ENV_PREFIX + "NETWORK": str(d["network"]),
            ENV_PREFIX + "SEED": str(d["seed"]),
            ENV_PREFIX + "QUERIES": str(d["queries"]),
            ENV_PREFIX + "NOISE": repr(float(d["noise"])),
            ENV_PREFIX + "SCENARIOS": ",".join(d["scenarios"]),
            ENV_PREFIX + "FLOWS": ",".join(d["flows"]),
            ENV_PREFIX + "SUMMARY": str(d["summary"]),
            ENV_PREFIX + "PROGRESS": str(d["progress"]),
        }

    @classmethod
    def from_env(cls, environ=None):
        env = os.environ if environ is None else environ

        def get(name, default=None):
            value = env.get(ENV_PREFIX + name, default)
            if value is None:
                raise KeyError(f"{ENV_PREFIX + name} is not set: run this module through "
                               f"khop.sim.runner, not directly")
            return value

        def split(text):
            return [s.strip() for s in text.split(",") if s.strip()]

        return cls(params=AccelParams.from_dict(json.loads(get("PARAMS"))), network=get("NETWORK"),
                   seed=int(get("SEED", "0")), queries=int(get("QUERIES", "300")),
                   noise=float(get("NOISE", "0.2")),
                   scenarios=split(get("SCENARIOS", ",".join(SCENARIOS))),
                   flows=split(get("FLOWS", ",".join(FLOWS))),
                   summary=get("SUMMARY", ""), progress=get("PROGRESS", ""))


def save_integer_network(path, inet: IntegerNetwork):
    """Write ``inet`` (arrays and :class:`~khop.model.fixed.FixedConfig`) as an ``.npz`` file,
    atomically; returns the path."""
    with atomic_path(path) as tmp:
        np.savez(tmp, patterns=np.asarray(inet.patterns, dtype=np.uint8),
                 codes=np.asarray(inet.codes, dtype=np.uint8),
                 lut=np.asarray(inet.lut, dtype=np.int64),
                 r_fx=np.asarray(inet.r_fx, dtype=np.int64),
                 config=np.array(json.dumps(inet.config.as_dict())))
    return Path(path)


def load_integer_network(path):
    """Read a file of :func:`save_integer_network` back into an :class:`IntegerNetwork`."""
    with np.load(path, allow_pickle=False) as z:
        return IntegerNetwork(patterns=z["patterns"].astype(np.uint8),
                              codes=z["codes"].astype(np.uint8),
                              lut=z["lut"].astype(np.int64), r_fx=z["r_fx"].astype(np.int64),
                              config=FixedConfig(**json.loads(str(z["config"]))))
