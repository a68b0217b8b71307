"""GPU backend: a Triton fp16 matmul (fp32 accumulate) whose block sizes, group size, warps and stages are tuned.

Optional: needs `torch` with CUDA and `triton`. Nothing is imported at module
import time; `available()` says whether the backend can run and `why_not()`
why it cannot. Trials run in-process (a CUDA context per trial would cost
seconds); a launch that fails (e.g. too much shared memory for the stages) is
raised as an error and becomes a failed trial. Checked against torch.matmul
(cuBLAS), which is also the baseline.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence


def why_not() -> str | None:
    """None when the backend can run, else the reason it cannot."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def available() -> bool:
    return why_not() is None


@functools.lru_cache(maxsize=1)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def matmul_kernel(
        a_ptr, b_ptr, c_ptr, M, N, K,
        stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        pid = tl.program_id(axis=0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        # grouped ordering: GROUP_M row-blocks share the same columns of B while they are in L2
        width = GROUP_M * num_pid_n
        group = pid // width
        first_m = group * GROUP_M
        size_m = min(num_pid_m - first_m, GROUP_M)
        pid_m = first_m + (pid % width) % size_m
        pid_n = (pid % width) // size_m
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_left), other=0.0)
            b = tl.load(b_ptrs, mask=(offs_k[:, None] < k_left) & (offs_n[None, :] < N), other=0.0)
            acc += tl.dot(a, b)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, acc.to(tl.float16), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))

    return matmul_kernel


class TritonMatmul:
    """C = A @ B in fp16 on the GPU with a tunable Triton launch configuration."""

    def __init__(self, shape: Sequence[int], repeats: int = 5, seed: int = 0):
        import torch

        self.m, self.n, self.k = (int(x) for x in shape)
        self.repeats = repeats
        gen = torch.Generator(device="cuda").manual_seed(seed)
        self.a = torch.randn((self.m, self.k), device="cuda", dtype=torch.float16, generator=gen)
        self.b = torch.randn((self.k, self.n), device="cuda", dtype=torch.float16, generator=gen)
        ref = self.a.float() @ self.b.float()
        self.ref = ref
        self.bound = self.a.float().abs() @ self.b.float().abs()

    def space(self):
        from autosys.core.space import Constraint, Ordinal, Space

        params = [
            Ordinal("block_m", (16, 32, 64, 128, 256), default=64),
            Ordinal("block_n", (16, 32, 64, 128, 256), default=64),
            Ordinal("block_k", (16, 32, 64, 128), default=32),
            Ordinal("group_m", (1, 2, 4, 8, 16), default=8),
            Ordinal("num_warps", (1, 2, 4, 8, 16), default=4),
            Ordinal("num_stages", (1, 2, 3, 4, 5), default=3),
        ]
        # fp16 operand tiles in shared memory, one copy per pipeline stage; keep under ~200 KiB
        smem = Constraint(
            "shared_memory",
            lambda c: (c["block_m"] + c["block_n"]) * c["block_k"] * 2 * c["num_stages"] <= 200 * 1024,
            "the (block_m + block_n) x block_k fp16 tiles of all stages must fit in shared memory",
        )
        return Space(params, [smem])

    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    def _launch(self, config: dict[str, Any]):
        import torch
        import triton

        c = torch.empty((self.m, self.n), device="cuda", dtype=torch.float16)
        grid = (triton.cdiv(self.m, config["block_m"]) * triton.cdiv(self.n, config["block_n"]),)
        kernel = _kernel()

        def run():
            kernel[grid](
                self.a, self.b, c, self.m, self.n, self.k,
                self.a.stride(0), self.a.stride(1), self.b.stride(0), self.b.stride(1), c.stride(0), c.stride(1),
                BLOCK_M=config["block_m"], BLOCK_N=config["block_n"], BLOCK_K=config["block_k"],
                GROUP_M=config["group_m"], num_warps=config["num_warps"], num_stages=config["num_stages"],
            )

        return run, c

    def _time(self, fn) -> list[float]:
        import torch

        fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(self.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / 10)
        return samples

    def evaluate(self, config: dict[str, Any]):
        import numpy as np

        from autosys_adapters.kernels.runner import KernelFailed
        from autosys.core.system import Measurement

        run, c = self._launch(config)
        run()  # compiles; launch errors raise here
        err = (c.float() - self.ref).abs()
        # fp16 output rounding (2^-11 relative) plus fp32 accumulation over K
        tol = (2.0**-11) * self.ref.abs() + 2.0 * (self.k + 2) * 2.0**-24 * self.bound + 1e-3
        ratio = float((err / tol).max())
        if not math.isfinite(ratio) or ratio > 1.0:
            raise KernelFailed(f"wrong result: error {ratio:.3g}x the tolerance")
        samples = self._time(run)
        med = float(np.median(samples))
        q1, q3 = np.percentile(samples, [25, 75])
        metrics = {"gflops": self.flops() / med / 1e9, "seconds": med, "spread": float((q3 - q1) / med), "err_ratio": ratio}
        return Measurement(metrics=metrics, samples={"seconds": samples}, info={"clock": "cuda_events"})

    def baselines(self) -> dict[str, dict[str, float]]:
        import numpy as np

        samples = self._time(lambda: self.a @ self.b)
        med = float(np.median(samples))
        return {"torch": {"gflops": self.flops() / med / 1e9, "seconds": med}}
