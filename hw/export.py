"""Verilog export of the accelerator and its JSON description."""

import json
import os
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from .accelerator import RetrievalAccelerator
from .layout import load_layout, result_layout
from .params import AccelParams

__all__ = ["TOP_NAME", "generate_verilog", "describe", "export"]

TOP_NAME = "khop_top"


def generate_verilog(params: AccelParams, network=None, name=TOP_NAME, *, fault=None):
    """Verilog text of :class:`RetrievalAccelerator` as module ``name``."""
    top = RetrievalAccelerator(params, network, fault=fault)
    return verilog.convert(top, name=name, emit_src=False)


def _layout_fields(layout):
    fields = []
    for fname, field in layout:
        fields.append({"name": fname, "offset": field.offset, "width": field.width})
    return fields


def describe(params: AccelParams, network_info=None):
    """A JSON-able description: parameters, ports, payload layouts, memories, cycle model."""
    load = load_layout(params)
    result = result_layout(params)
    ports = [
        {"name": "clk", "direction": "in", "width": 1},
        {"name": "rst", "direction": "in", "width": 1, "note": "synchronous, active high"},
        {"name": "i_query__valid", "direction": "in", "width": 1},
        {"name": "i_query__ready", "direction": "out", "width": 1},
        {"name": "i_query__payload", "direction": "in", "width": params.n,
         "note": "bit i = neuron i, 1 means +1"},
        {"name": "o_result__valid", "direction": "out", "width": 1},
        {"name": "o_result__ready", "direction": "in", "width": 1},
        {"name": "o_result__payload", "direction": "out", "width": result.size},
        {"name": "i_load__valid", "direction": "in", "width": 1},
        {"name": "i_load__ready", "direction": "out", "width": 1},
        {"name": "i_load__payload", "direction": "in", "width": load.size},
    ]
    bits = params.memory_bits
    return {
        "top": TOP_NAME,
        "parameters": params.as_dict(),
        "network": network_info or {},
        "ports": ports,
        "layouts": {
            "o_result__payload": _layout_fields(result),
            "i_load__payload": _layout_fields(load),
            "load_targets": {"PATTERN": 0, "WEIGHT": 1, "LUT": 2, "THRESHOLD": 3},
        },
        "memories": {
            "pattern": {"depth": params.pattern_depth, "width": params.pattern_width,
                        "bits": bits["pattern"],
                        "word": "mu * chunks + c holds pattern bits c*W .. c*W+W-1"},
            "weight": {"depth": params.weight_depth, "width": params.weight_width,
                       "bits": bits["weight"],
                       "word": "mu * blocks + b holds codes of neurons b*L .. b*L+L-1, "
                               "lane l at bits l*k .. l*k+k-1"},
            "lut": {"depth": params.lut_depth, "width": params.kernel_bits,
                    "bits": bits["lut"], "word": "d holds round(2^(kernel_bits-1) "
                                                 "* exp(-4 gamma d))"},
            "accumulator_flipflops": params.accumulator_bits,
        },
        "widths": {"accumulator": params.acc_bits, "kernel_sum": params.sum_bits,
                   "threshold": params.threshold_bits, "theta": params.product_bits,
                   "distance": params.distance_bits},
        "cycle_model": {
            "loop_order": "pattern-outer",
            "blocks": params.blocks,
            "chunks": params.chunks,
            "cycles_per_pattern": params.cycles_per_pattern,
            "cycles_per_step": params.cycles_per_step,
            "bound_cycles_per_step": params.bound_cycles_per_step,
            "ratio_to_bound": params.cycles_per_step / params.bound_cycles_per_step,
            "formula": "cycles_per_step = chunks + 12 + (p - 1) * max(blocks, chunks) + blocks "
                       "+ threshold_bits + blocks",
            "cycles_per_query": "steps * cycles_per_step, counted from the clock edge that "
                                "transfers the query to the first edge with o_result valid",
        },
    }


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(params: AccelParams, network, out_dir, network_info=None, *, fault=None):
    """Write ``khop_top.v`` and ``khop_top.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    text = generate_verilog(params, network, fault=fault)
    info = describe(params, network_info)
    info["generation_seconds"] = round(time.perf_counter() - t0, 3)
    v_path, j_path = out / f"{TOP_NAME}.v", out / f"{TOP_NAME}.json"
    _atomic_write(v_path, text)
    _atomic_write(j_path, json.dumps(info, indent=2) + "\n")
    return v_path, j_path
