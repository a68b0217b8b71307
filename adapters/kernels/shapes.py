"""Kernel shapes: the ops the kernel system generates and how their shapes are written ("M,N,K", "N,C,H,W,K,R,S").

Its own module so that the system and the cost model (which the system's learning-loop learner
names) both read shapes without importing each other.
"""

from __future__ import annotations

from typing import Sequence

OPS = {"matmul": 3, "conv2d": 7}


def parse_shape(op: str, shape: str | Sequence[int]) -> tuple[int, ...]:
    """'M,N,K' for matmul, 'N,C,H,W,K,R,S' for conv2d; every dimension a positive integer."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose one of: {', '.join(OPS)}")
    parts = shape.replace("x", ",").split(",") if isinstance(shape, str) else list(shape)
    try:
        dims = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        raise ValueError(f"shape {shape!r} is not a comma-separated list of integers") from None
    names = "M,N,K" if op == "matmul" else "N,C,H,W,K,R,S"
    if len(dims) != OPS[op] or min(dims) < 1:
        raise ValueError(f"{op} shape must be {OPS[op]} positive integers {names}, got {shape!r}")
    if op == "conv2d" and (dims[5] > dims[2] or dims[6] > dims[3]):
        raise ValueError(f"conv2d filter {dims[5]}x{dims[6]} is larger than the {dims[2]}x{dims[3]} input")
    return dims


__all__ = ["OPS", "parse_shape"]
