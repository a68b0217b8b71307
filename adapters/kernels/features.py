"""Schedule features for the cost model: what a schedule does to registers, caches and edges.

The features include the problem shape, so one model learns from trials of
any shape and can rank schedules for a shape it has never measured (AutoTVM's
transfer). Every feature is a plain float; the names are stable and ordered.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from autosys_adapters.kernels.codegen import (CONV_ORDERS, GEMM_LAYOUTS, MATMUL_ORDERS, conv_out_shape, gemm_schedule,
                                              registers_needed)
from autosys_adapters.kernels.cpu import VECTOR_LANES, VECTOR_REGS, cpu_info
from autosys_adapters.kernels.shapes import conv_dims

ISAS = ("autovec", "avx2", "avx512")
PARS = ("outer", "inner", "collapse", "k", "p")


def _log2(x: float) -> float:
    return math.log2(max(float(x), 1e-9))


def _onehot(prefix: str, value: Any, choices: Sequence[Any]) -> dict[str, float]:
    return {f"{prefix}={c}": float(value == c) for c in choices}


def _ceil_to(x: int, m: int) -> int:
    return -(-x // m) * m


def matmul_features(shape: Sequence[int], s: Mapping[str, Any], threads: int = 1) -> dict[str, float]:
    m, n, k = (int(x) for x in shape)
    cpu = cpu_info()
    lanes = VECTOR_LANES[s["isa"]]
    mr, nv = int(s["mr"]), int(s["nv"])
    nr = nv * lanes
    mc = min(_ceil_to(int(s["mc"]), mr), _ceil_to(m, mr))
    nc = min(_ceil_to(int(s["nc"]), nr), _ceil_to(n, nr))
    kc = min(int(s["kc"]), k)
    trips = {"j": -(-n // nc), "p": -(-k // kc), "i": -(-m // mc)}
    # how often each operand is packed: the trip counts of the loops enclosing its pack point
    packs = {"a": 1.0, "b": 1.0}
    bound: set[str] = set()
    done: set[str] = set()
    enclosing = 1.0
    for letter in s["order"]:
        bound.add(letter)
        enclosing *= trips[letter]
        for op_, need in (("b", {"j", "p"}), ("a", {"i", "p"})):
            if op_ not in done and need <= bound:
                packs[op_] = enclosing / (trips["p"] * (trips["j"] if op_ == "b" else trips["i"]))
                done.add(op_)
    f: dict[str, float] = {
        "log_m": _log2(m),
        "log_n": _log2(n),
        "log_k": _log2(k),
        "log_flops": _log2(2.0 * m * n * k),
        "threads": float(threads),
        "lanes": float(lanes),
        "mr": float(mr),
        "nr": float(nr),
        "nv": float(nv),
        "acc_regs": float(mr * nv),
        "reg_use": registers_needed(mr, nv) / VECTOR_REGS[s["isa"]],
        "intensity": mr * nr / (mr + nr),
        "log_mc": _log2(mc),
        "log_nc": _log2(nc),
        "log_kc": _log2(kc),
        "a_panel_l1": _log2(mr * kc * 4 / cpu.l1d),
        "b_panel_l1": _log2(kc * nr * 4 / cpu.l1d),
        "a_block_l2": _log2(mc * kc * 4 / cpu.l2),
        "b_block_l2": _log2(kc * nc * 4 / cpu.l2),
        "b_block_l3": _log2(kc * nc * 4 / cpu.l3),
        "pad_m": _ceil_to(m, mr) / m,
        "pad_n": _ceil_to(n, nr) / n,
        "tiles": _log2(-(-m // mr) * -(-n // nr)),
        "k_blocks": float(trips["p"]),
        "repack_a": _log2(packs["a"]),
        "repack_b": _log2(packs["b"]),
        "pack_a": float(bool(s["pack_a"])),
        "pack_b": float(bool(s["pack_b"])),
        "log_unroll": _log2(int(s["unroll"])),
        "inner_ji": float(s["inner"] == "ji"),
    }
    f.update(_onehot("isa", s["isa"], ISAS))
    f.update(_onehot("order", s["order"], MATMUL_ORDERS))
    f.update(_onehot("par", s.get("par") if threads > 1 else None, PARS))
    return f


#: a direct conv2d schedule, only to name the direct features of a gemm schedule (all zero there)
_DIRECT_NAMES = {"isa": "avx2", "rk": 1, "rq": 1, "tk": 4, "tc": 1, "tp": 1, "order": "kcp", "pack_w": True, "unroll": 1}
_GEMM_NAMES = {"isa": "avx2", "mr": 1, "nv": 1, "mc": 16, "kc": 16, "nc": 32, "order": "jpi", "inner": "ji",
               "pack_a": True, "pack_b": True, "unroll": 1}


def conv2d_features(shape: Sequence[int], s: Mapping[str, Any], threads: int = 1) -> dict[str, float]:
    """The algorithm, then the direct kernel's features and the gemm's (matmul features of its
    [K, CRS] x [CRS, PQ] product, prefixed); the branch not taken reads zero."""
    d = conv_dims(shape)
    gemm = s.get("algo", "direct") == "gemm"
    direct_f = _direct_conv_features(shape, _DIRECT_NAMES if gemm else s, threads)
    layout = s.get("gemm_layout", "kn") if gemm else None
    nk = layout in ("nk", "nk_direct")
    gemm_shape = (d.p * d.q, d.k, d.c * d.r * d.s) if nk else (d.k, d.p * d.q, d.c * d.r * d.s)
    inner = gemm_schedule(s) if gemm else _GEMM_NAMES
    gemm_f = matmul_features(gemm_shape, inner, threads)
    f = {"algo=gemm": float(gemm), "log_stride": _log2(d.stride)}
    f.update(_onehot("gemm_layout", layout, GEMM_LAYOUTS))
    f.update({name: 0.0 if gemm and name not in _SHAPE_FEATURES else v for name, v in direct_f.items()})
    f.update({f"gemm.{name}": v if gemm else 0.0 for name, v in gemm_f.items()})
    return f


#: the direct features that describe the problem, not the schedule: kept for gemm schedules too
_SHAPE_FEATURES = ("log_c", "log_k", "log_p", "log_q", "rs", "log_flops", "threads")


def _direct_conv_features(shape: Sequence[int], s: Mapping[str, Any], threads: int = 1) -> dict[str, float]:
    bn, c, h, w, k, r, sw, _ = conv_dims(shape)
    p, q = conv_out_shape(shape)
    cpu = cpu_info()
    lanes = VECTOR_LANES[s["isa"]]
    rk, rq = int(s["rk"]), int(s["rq"])
    qt = rq * lanes
    tk = min(_ceil_to(int(s["tk"]), rk), _ceil_to(k, rk))
    tc = min(int(s["tc"]), c)
    tp = min(int(s["tp"]), p)
    f: dict[str, float] = {
        "log_c": _log2(c),
        "log_k": _log2(k),
        "log_p": _log2(p),
        "log_q": _log2(q),
        "rs": float(r * sw),
        "log_flops": _log2(2.0 * bn * k * p * q * c * r * sw),
        "threads": float(threads),
        "lanes": float(lanes),
        "rk": float(rk),
        "rq": float(rq),
        "acc_regs": float(rk * rq),
        "reg_use": registers_needed(rk, rq) / VECTOR_REGS[s["isa"]],
        "intensity": rk * qt / (rk + qt),
        "tail_frac": (q % qt) / q,  # columns left to the scalar tail
        "pad_k": _ceil_to(k, rk) / k,
        "log_tk": _log2(tk),
        "log_tc": _log2(tc),
        "log_tp": _log2(tp),
        "in_tile_l1": _log2(tc * (tp + r - 1) * w * 4 / cpu.l1d),
        "in_tile_l2": _log2(tc * (tp + r - 1) * w * 4 / cpu.l2),
        "w_tile_l1": _log2(tk * tc * r * sw * 4 / cpu.l1d),
        "out_tile_l2": _log2(tk * tp * q * 4 / cpu.l2),
        "pack_w": float(bool(s["pack_w"])),
        "log_unroll": _log2(int(s["unroll"])),
    }
    f.update(_onehot("isa", s["isa"], ISAS))
    f.update(_onehot("order", s["order"], CONV_ORDERS))
    f.update(_onehot("par", s.get("par") if threads > 1 else None, PARS))
    return f


def schedule_features(op: str, shape: Sequence[int], schedule: Mapping[str, Any], threads: int = 1) -> dict[str, float]:
    if op == "matmul":
        return matmul_features(shape, schedule, threads)
    if op == "conv2d":
        return conv2d_features(shape, schedule, threads)
    raise ValueError(f"unknown op {op!r}; choose 'matmul' or 'conv2d'")


def feature_vector(op: str, shape: Sequence[int], schedule: Mapping[str, Any], threads: int = 1) -> np.ndarray:
    return np.fromiter(schedule_features(op, shape, schedule, threads).values(), dtype=float)
