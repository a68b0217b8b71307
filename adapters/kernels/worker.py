"""The child process of one kernel trial: compile (cached), load, check against numpy, time.

Run as `python -m autosys_adapters.kernels.worker` with a JSON spec on stdin; prints
one JSON line on stdout. Anything that goes wrong in here — a compiler error,
a segfault, a kernel that never returns — takes down only this process; the
parent (`autosys_adapters.kernels.runner`) turns it into a failed or timed-out trial.

Spec keys: op ("matmul" | "conv2d"), shape, threads, repeats, warmup,
min_sample_s, compile_timeout, max_seconds (timing budget per kernel, which cuts the rounds of
slow kernels), seed, cache_dir, flags, check (bool), and kernels: a list of
{"name", "kind": "c" | "numpy", "source", optional "flags" (e.g. to link a library)} measured interleaved in rounds, so
ratios between them come from the same run. A C kernel that also exports `void prepare(const float *B)`
gets it called once before its first run, untimed (packing a conv2d's constant weights).
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

from autosys_adapters.kernels.shapes import conv_dims

U32 = 2.0**-24  # unit roundoff of fp32


def flops(op: str, shape: list[int]) -> float:
    if op == "matmul":
        m, n, k = shape
        return 2.0 * m * n * k
    d = conv_dims(shape)
    return 2.0 * d.n * d.k * d.p * d.q * d.c * d.r * d.s


def reduction_size(op: str, shape: list[int]) -> int:
    if op == "matmul":
        return shape[2]
    return shape[1] * shape[5] * shape[6]


def make_operands(op: str, shape: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if op == "matmul":
        m, n, k = shape
        a_shape, b_shape, c_shape = (m, k), (k, n), (m, n)
    else:
        d = conv_dims(shape)
        a_shape, b_shape, c_shape = (d.n, d.c, d.h, d.w), (d.k, d.c, d.r, d.s), (d.n, d.k, d.p, d.q)
    a = rng.uniform(-1, 1, a_shape).astype(np.float32)
    b = rng.uniform(-1, 1, b_shape).astype(np.float32)
    return a, b, np.zeros(c_shape, dtype=np.float32)


def numpy_op(op: str, a: np.ndarray, b: np.ndarray, stride: int = 1) -> np.ndarray:
    """The library baseline: BLAS matmul, or im2col (a strided window view) + BLAS for conv2d."""
    if op == "matmul":
        return a @ b
    r, s = b.shape[2], b.shape[3]
    windows = np.lib.stride_tricks.sliding_window_view(a, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]  # n c p q r s
    out = np.tensordot(windows, b, axes=([1, 4, 5], [1, 2, 3]))  # n p q k
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def check(op: str, shape: list[int], a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict[str, float]:
    """Compare with a float64 reference; the tolerance is the classic bound gamma_n * (|A| |B|), n = reduction size."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    stride = conv_dims(shape).stride if op == "conv2d" else 1
    ref = numpy_op(op, a64, b64, stride)
    bound = numpy_op(op, np.abs(a64), np.abs(b64), stride)
    n = reduction_size(op, shape)
    tol = 2.0 * (n + 2) * U32 * bound + 1e-30
    if not np.all(np.isfinite(c)):
        return {"err_ratio": float("inf"), "max_abs_err": float("inf")}
    err = np.abs(c.astype(np.float64) - ref)
    return {"err_ratio": float(np.max(err / tol)), "max_abs_err": float(np.max(err))}


def _runner(kernel: dict[str, Any], op: str, a, b, c, spec) -> tuple[Callable[[], None], dict[str, Any]]:
    info: dict[str, Any] = {}
    if kernel["kind"] == "numpy":
        stride = conv_dims(spec["shape"]).stride if op == "conv2d" else 1
        return (lambda: numpy_op(op, a, b, stride)), info
    from autosys_adapters.kernels.compile import DEFAULT_FLAGS, compile_source

    built = compile_source(
        kernel["source"], spec.get("cache_dir"), tuple(kernel.get("flags") or spec.get("flags") or DEFAULT_FLAGS),
        timeout=float(spec.get("compile_timeout", 60.0)),
    )
    info.update(compile_s=built.seconds, cached=built.cached, library=str(built.path))
    lib = ctypes.CDLL(str(built.path))
    fn = lib.kernel
    fn.argtypes = [ctypes.c_void_p] * 3
    fn.restype = None
    pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data
    try:  # a kernel that packs its constant operand ahead (a conv2d's weights) does it once, untimed
        prepare = lib.prepare
    except AttributeError:
        prepare = None
    if prepare is not None:
        prepare.argtypes, prepare.restype = [ctypes.c_void_p], None
        t0 = time.perf_counter()
        prepare(pb)
        info["prepare_s"] = time.perf_counter() - t0
    return (lambda: fn(pa, pb, pc)), info


def run(spec: dict[str, Any]) -> dict[str, Any]:
    op, shape = spec["op"], [int(x) for x in spec["shape"]]
    threads = int(spec.get("threads", 1))
    repeats, warmup = int(spec.get("repeats", 7)), int(spec.get("warmup", 1))
    min_sample = float(spec.get("min_sample_s", 0.02))
    a, b, c = make_operands(op, shape, int(spec.get("seed", 0)))
    # one thread: this thread's CPU time (immune to other jobs' preemption); several: wall time
    clock = time.thread_time_ns if threads == 1 else time.perf_counter_ns
    results: dict[str, dict[str, Any]] = {}
    calls: dict[str, Callable[[], None]] = {}
    reps: dict[str, int] = {}
    rounds: dict[str, int] = {}
    max_seconds = float(spec.get("max_seconds", 3.0))
    for kernel in spec["kernels"]:
        name = kernel["name"]
        fn, info = _runner(kernel, op, a, b, c, spec)
        t0 = clock()
        fn()  # first call: also the correctness run
        first = (clock() - t0) * 1e-9
        if spec.get("check", True) and kernel["kind"] == "c":
            info.update(check(op, shape, a, b, c))
            if info["err_ratio"] > 1.0:
                info["error"] = (
                    f"wrong result: max error {info['max_abs_err']:.3g} is {info['err_ratio']:.3g}x the tolerance"
                )
                results[name] = info
                continue
        if first * (warmup + repeats) <= max_seconds:  # a slow kernel is not worth a warm-up
            for _ in range(warmup):
                fn()
        calls[name] = fn
        reps[name] = max(1, int(min_sample / max(first, 1e-7)))
        # a slow kernel gets fewer rounds (at least 2): the tuner needs its rank, not its third digit
        rounds[name] = max(min(2, repeats), min(repeats, int(max_seconds / max(first, 1e-9))))
        results[name] = info | {"samples": []}
    for round_ in range(repeats):  # interleaved rounds: every kernel sees the same background load
        for name, fn in calls.items():
            if round_ >= rounds[name]:
                continue
            n = reps[name]
            t0 = clock()
            for _ in range(n):
                fn()
            results[name]["samples"].append((clock() - t0) * 1e-9 / n)
    work = flops(op, shape)
    for name in calls:
        samples = np.array(results[name]["samples"])
        med = float(np.median(samples))
        q1, q3 = np.percentile(samples, [25, 75])
        results[name].update(
            seconds=med,
            gflops=work / med / 1e9,
            spread=float((q3 - q1) / med),
            best_gflops=work / float(samples.min()) / 1e9,
            calls_per_sample=reps[name],
        )
    return {"clock": "thread_cpu" if threads == 1 else "wall", "threads": threads, "kernels": results}


def main() -> int:
    try:
        spec = json.loads(sys.stdin.read())
        out = run(spec)
    except Exception as exc:  # reported to the parent as data
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
