"""Kernel shapes: the ops the kernel system generates and how their shapes are written ("M,N,K", "N,C,H,W,K,R,S[,stride]").

Its own module so that the system and the cost model (which the system's learning-loop learner
names) both read shapes without importing each other.

A conv2d shape is N,C,H,W,K,R,S on the (already padded) input, with an
optional eighth number, the stride (default 1). A stride-1 shape keeps its
seven numbers, so stored stride-1 studies and cost-model records still read.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

#: dimensions of each op's shape (conv2d: 7, or 8 with a stride)
OPS = {"matmul": 3, "conv2d": 7}


class ConvDims(NamedTuple):
    """A conv2d problem: batch, input channels, input height/width, output channels, filter height/width, stride."""

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int

    @property
    def p(self) -> int:
        """Output rows."""
        return (self.h - self.r) // self.stride + 1

    @property
    def q(self) -> int:
        """Output columns."""
        return (self.w - self.s) // self.stride + 1


def conv_dims(shape: Sequence[int]) -> ConvDims:
    """The named dimensions of a conv2d shape of 7 numbers (stride 1) or 8 (the stride last)."""
    dims = [int(x) for x in shape]
    if len(dims) == 7:
        dims.append(1)
    if len(dims) != 8:
        raise ValueError(f"a conv2d shape is N,C,H,W,K,R,S[,stride], got {len(dims)} numbers")
    return ConvDims(*dims)


def parse_shape(op: str, shape: str | Sequence[int]) -> tuple[int, ...]:
    """'M,N,K' for matmul, 'N,C,H,W,K,R,S[,stride]' for conv2d; every dimension a positive integer."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose one of: {', '.join(OPS)}")
    parts = shape.replace("x", ",").split(",") if isinstance(shape, str) else list(shape)
    try:
        dims = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        raise ValueError(f"shape {shape!r} is not a comma-separated list of integers") from None
    names = "M,N,K" if op == "matmul" else "N,C,H,W,K,R,S[,stride]"
    sizes = (OPS[op], OPS[op] + 1) if op == "conv2d" else (OPS[op],)
    if len(dims) not in sizes or min(dims) < 1:
        raise ValueError(f"{op} shape must be {' or '.join(map(str, sizes))} positive integers {names}, got {shape!r}")
    if op == "conv2d":
        if dims[5] > dims[2] or dims[6] > dims[3]:
            raise ValueError(f"conv2d filter {dims[5]}x{dims[6]} is larger than the {dims[2]}x{dims[3]} input")
        if len(dims) == 8 and dims[7] == 1:
            dims = dims[:7]  # stride 1 is the seven-number shape
    return dims


__all__ = ["OPS", "ConvDims", "conv_dims", "parse_shape"]
