"""Tune the schedule of a real compiled tensor kernel (matmul or NCHW conv2d).

A config is a schedule: register tile, cache tiles, loop order, packing,
unroll, SIMD code path (and how threads split the work); for conv2d also the
algorithm, a direct kernel (stride 1) or im2col + a generated matmul whose
knobs are the matmul's, prefixed `gemm_`. Each trial generates
C, compiles it with `gcc -O3 -march=native` (cached by source hash), checks the
result against numpy and times it, all in a child process with a deadline,
so a crashing or runaway kernel is one failed trial, not a dead study.

Every knob changes the generated code, so each costs a rebuild (a compile).
Fidelity: the timed repeats (1 to `repeats`). Predictor: a fitted
gradient-boosted cost model (adapters/kernels/cost_model.py, e.g. fitted on
`records_from_study` of earlier kernel studies of any shape) handed to
`use_cost_model`; none otherwise.

    autosys tune kernel --op matmul --shape 512,512,512 --budget 60 --json out.json
    autosys tune kernel --op conv2d --shape 1,64,58,58,64,3,3 --threads 2
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from autosys_adapters.kernels import codegen
from autosys_adapters.kernels.cpu import VECTOR_REGS, cpu_info
from autosys_adapters.kernels.features import feature_vector, schedule_features
from autosys_adapters.kernels.runner import KernelFailed, run_spec
from autosys_adapters.kernels.shapes import OPS, conv_dims, parse_shape
from autosys.core.fidelity import Fidelity, Predictor, stamp
from autosys.core.space import Bool, Categorical, Condition, Config, Constraint, InvalidConfig, Int, Ordinal, Space
from autosys.core.system import Measurement, Objective, System, SystemUnavailable
from autosys.core.monitor import Monitor, host_monitors

#: OpenMP wait policies -> the worker's environment (None: unset, libgomp decides)
OMP_WAITS = {
    "spin": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "300000"},  # libgomp's default, stated
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}


def _fits_registers(rows: str, vecs: str):
    def check(config: Config) -> bool:
        if rows not in config:  # the knobs of an inactive branch (conv2d's other algorithm)
            return True
        return codegen.registers_needed(config[rows], config[vecs]) <= VECTOR_REGS[config["isa"]]

    return check


def _row_tile(width: int, isa: str, vectors: int) -> int:
    """The register-tile height (4 to 8 rows, within the registers) that covers `width` pixels with the fewest
    idle rows, the taller on a tie: 7 for the 7-, 14-, 28-pixel rows of ResNet-50's late layers, 8 for 56."""
    fits = [mr for mr in range(4, 9) if codegen.registers_needed(mr, vectors) <= VECTOR_REGS[isa]]
    return min(fits, key=lambda mr: (-(-width // mr) * mr - width, -mr))


class KernelSchedule(System):
    """Schedules of a generated C matmul / conv2d kernel, measured in GFLOP/s (higher is better).

    Args:
        op: the kernel, matmul or conv2d.
        shape: M,N,K for matmul, N,C,H,W,K,R,S for conv2d.
        threads: OpenMP threads the kernel runs on.
        repeats: timed runs per trial; the median is reported.
        timeout: seconds a compile or a timed run may take.
        backend: cpu (generated C, gcc) or triton (a GPU; matmul only).
        cache_dir: where compiled kernels are kept (none = the default cache folder).
        seed: seeds the kernel's input data.
        omp_wait: how idle OpenMP threads wait between parallel regions (`OMP_WAIT_POLICY`): spin (libgomp's
            own default, as OpenBLAS's threads do: spin a while, then sleep), passive (sleep at once) or active
            (spin always; on a busy host a spinning barrier waits for a descheduled thread).
    """

    name = "kernel"
    exclusive = True  # timings of concurrent trials would disturb each other

    def __init__(
        self,
        op: str = "matmul",
        shape: str = "256,256,256",
        threads: int = 1,
        repeats: int = 5,
        timeout: float = 60.0,
        backend: str = "cpu",
        cache_dir: str | None = None,
        seed: int = 0,
        omp_wait: str = "spin",
    ):
        self.op = op
        self.shape = parse_shape(op, shape)
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if omp_wait not in OMP_WAITS:
            raise ValueError(f"omp_wait must be one of {', '.join(OMP_WAITS)}, not {omp_wait!r}")
        self.omp_wait = omp_wait
        if backend not in ("cpu", "triton"):
            raise ValueError(f"unknown backend {backend!r}; choose 'cpu' or 'triton'")
        self.threads, self.repeats, self.timeout = int(threads), int(repeats), float(timeout)
        self.backend, self.cache_dir, self.seed = backend, cache_dir, int(seed)
        self._space: Space | None = None
        self._model = None  # a fitted KernelCostModel, the predictor
        self._gpu = None
        if backend == "triton":
            if op != "matmul":
                raise ValueError("the triton backend tunes matmul only")
            from autosys_adapters.kernels import triton_backend

            if not triton_backend.available():
                raise SystemUnavailable(f"the triton backend needs torch with CUDA and triton: {triton_backend.why_not()}")
            self._gpu = triton_backend.TritonMatmul(self.shape, repeats=repeats)

    # --- the knobs
    def space(self) -> Space:
        if self._space is None:
            if self._gpu is not None:
                space = self._gpu.space()
            elif self.op == "matmul":
                space = self._matmul_space()
            else:
                space = self._conv_space()
            self._space = space.with_apply_costs({p.name: "rebuild" for p in space})
        return self._space

    def _matmul_space(self) -> Space:
        isas = cpu_info().isas
        params = [
            Categorical("isa", isas, default="autovec"),
            Int("mr", 1, 16, default=6),
            Int("nv", 1, 4, default=2),
            Ordinal("mc", (16, 32, 48, 64, 96, 128, 192, 256, 384, 512), default=96),
            Ordinal("kc", (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024), default=256),
            Ordinal("nc", (32, 64, 128, 256, 512, 1024, 2048, 4096), default=1024),
            Categorical("order", codegen.MATMUL_ORDERS, default="jpi"),
            Categorical("inner", ("ji", "ij"), default="ji"),
            Bool("pack_a", default=True),
            Bool("pack_b", default=True),
            Ordinal("unroll", (1, 2, 4, 8), default=1),
        ]
        if self.threads > 1:
            params.append(Categorical("par", ("outer", "inner", "collapse"), default="outer"))
        regs = Constraint(
            "register_tile", _fits_registers("mr", "nv"), "mr*nv accumulators + nv B vectors + 1 broadcast must fit the vector registers"
        )
        return Space(params, [regs])

    def _conv_space(self) -> Space:
        """The direct kernel's knobs (stride 1 only) and the gemm algorithm's (im2col + a generated matmul),
        each branch active under its value of `algo`."""
        isas = cpu_info().isas
        strided = conv_dims(self.shape).stride > 1
        algos = ("gemm",) if strided else codegen.CONV_ALGOS
        # the default is the schedule an engineer would write first: the widest SIMD here, the direct
        # kernel over output pixels x channels (no im2col), the matmul's default register tile
        params = [
            Categorical("isa", isas, default=isas[-1]),
            Categorical("algo", algos, default="gemm"),
        ]
        if not strided:
            direct = Condition("algo", ("direct",))
            params += [
                Int("rk", 1, 8, default=4, condition=direct),
                Int("rq", 1, 4, default=2, condition=direct),
                Ordinal("tk", (4, 8, 16, 32, 64, 128), default=16, condition=direct),
                Ordinal("tc", (1, 2, 4, 8, 16, 32, 64, 128, 256), default=16, condition=direct),
                Ordinal("tp", (1, 2, 4, 8, 16, 32), default=4, condition=direct),
                Categorical("order", codegen.CONV_ORDERS, default="kcp", condition=direct),
                Bool("pack_w", default=True, condition=direct),
                Ordinal("unroll", (1, 2, 4), default=1, condition=direct),
            ]
            if self.threads > 1:
                params.append(Categorical("par", ("k", "p"), default="k", condition=direct))
        gemm = Condition("algo", ("gemm",))
        params.append(Categorical("gemm_layout", codegen.GEMM_LAYOUTS, default="nk_direct", condition=gemm))
        # a knob a layout fixes (codegen.GEMM_LAYOUT_FIXED) is not searched in that layout
        only = {knob: tuple(lay for lay in codegen.GEMM_LAYOUTS if knob not in codegen.GEMM_LAYOUT_FIXED[lay])
                for fixed in codegen.GEMM_LAYOUT_FIXED.values() for knob in fixed}
        only["par"] = ("kn", "nk")  # nk_direct's threads always split the output rows
        params += [p.renamed(codegen.GEMM_PREFIX + p.name, Condition("gemm_layout", only[p.name]) if p.name in only else gemm)
                   for p in self._matmul_space() if p.name != "isa"]
        # nk_direct's register tile covers output pixels of one row: by default the tile that wastes least of it
        i = next(i for i, p in enumerate(params) if p.name == "gemm_mr")
        params[i] = dataclasses.replace(params[i], default=_row_tile(conv_dims(self.shape).q, isas[-1], vectors=2))
        constraints = [
            Constraint("register_tile", _fits_registers("rk", "rq"),
                       "rk*rq accumulators + rq input vectors + 1 broadcast must fit the vector registers"),
            Constraint("gemm_register_tile", _fits_registers("gemm_mr", "gemm_nv"),
                       "gemm_mr*gemm_nv accumulators + gemm_nv B vectors + 1 broadcast must fit the vector registers"),
        ]
        return Space(params, constraints)

    @property
    def objective(self) -> Objective:
        return Objective("gflops", "maximize")

    # --- code
    def source(self, config: Config) -> str:
        """The C source of a schedule (raises InvalidConfig for an illegal one)."""
        clean = self.space().validate(config)
        try:
            if self.op == "matmul":
                return codegen.matmul_source(self.shape, clean, self.threads)
            return codegen.conv2d_source(self.shape, clean, self.threads)
        except (ValueError, KeyError) as exc:
            raise InvalidConfig(f"cannot generate a kernel for {clean}: {exc}") from exc

    def naive_source(self) -> str:
        if self.op == "matmul":
            return codegen.naive_matmul_source(self.shape)
        return codegen.naive_conv2d_source(self.shape)

    def features(self, config: Config) -> np.ndarray:
        """Cost-model features of a schedule on this shape (see autosys_adapters.kernels.features); none on the GPU."""
        if self._gpu is not None:
            return np.zeros(0)
        return feature_vector(self.op, self.shape, config, self.threads)

    def feature_names(self) -> list[str]:
        if self._gpu is not None:
            return []
        return list(schedule_features(self.op, self.shape, self.default(), self.threads))

    # --- measuring
    def _spec(self, kernels: list[dict[str, Any]], repeats: int | None = None) -> dict[str, Any]:
        return {
            "op": self.op,
            "shape": list(self.shape),
            "threads": self.threads,
            "repeats": repeats or self.repeats,
            "warmup": 1,
            "min_sample_s": 0.01,
            "seed": self.seed,
            "cache_dir": self.cache_dir,
            "check": True,
            # a schedule that takes gcc this long (autovec + deep unroll: up to a minute here) fails early
            "compile_timeout": max(5.0, self.timeout / 3),
            "kernels": kernels,
            # how idle OpenMP threads wait (OMP_WAITS): always spinning, on a shared, oversubscribed host a
            # barrier waits for a descheduled thread (measured here: 60+ vs about 1 GFLOP/s at 2 threads);
            # always sleeping, each call pays the threads' wake-up (0.65-0.93x OpenBLAS at 2 threads, whose
            # threads spin a while, then sleep, as libgomp's own default does: 1.04-1.17x with it)
            "env": OMP_WAITS[self.omp_wait],
        }

    def measure_sources(self, sources: dict[str, str], numpy: bool = False, repeats: int | None = None,
                        flags: dict[str, Sequence[str]] | None = None) -> dict[str, dict]:
        """Time several kernels (and numpy) interleaved; name -> report. `flags`: compiler flags of
        named kernels that need their own (a library to link: adapters/kernels/onednn.py).

        With one thread everything shares one child process, in interleaved
        rounds. With several, numpy runs in child processes of its own that
        alternate with the C kernels' (OpenBLAS and OpenMP thread pools in one
        process spin against each other), and the samples are pooled.
        """
        kernels = [{"name": name, "kind": "c", "source": src, **({"flags": list(flags[name])} if flags and name in flags else {})}
                   for name, src in sources.items()]
        numpy_kernel = {"name": "numpy", "kind": "numpy"}
        deadline = self.timeout * max(1, len(kernels) + numpy)
        if not numpy or self.threads == 1:
            specs = [[numpy_kernel] * numpy + kernels]
        else:
            specs = [kernels, [numpy_kernel]] * 2 if kernels else [[numpy_kernel]]
        reports: dict[str, dict] = {}
        for group in specs:
            if not group:
                continue
            for name, k in run_spec(self._spec(group, repeats), timeout=deadline)["kernels"].items():
                if name in reports and "samples" in k and "samples" in reports[name]:
                    reports[name] = _pool(reports[name], k)
                else:
                    reports[name] = k
        return reports

    # --- fidelity and the cost model below it
    def fidelity(self) -> Fidelity:
        """Timed repeats (full = `repeats`); a slow kernel may get fewer rounds than asked (at least 2)."""
        return Fidelity("repeats", "repeats", 1, self.repeats, unit="timed runs")

    def use_cost_model(self, model) -> None:
        """Predict with this fitted `KernelCostModel` (anything with its `predict_gflops`)."""
        self._model = model

    def predictor(self) -> Predictor | None:
        """Predicted GFLOP/s of a schedule from the cost model; None without one (or on the GPU)."""
        model = self._model
        if self._gpu is not None or model is None:
            return None

        def predict(config) -> float:
            clean = self.space().validate(config)
            return float(model.predict_gflops(self.op, self.shape, [clean], self.threads)[0])

        return predict

    @classmethod
    def learners(cls) -> list:
        """The kernel cost model, trained by the learning loop on every stored kernel study (autosys/learn/loop.py)."""
        from autosys_adapters.kernels.cost_model import KernelCostLearner

        return [KernelCostLearner()]

    def monitors(self) -> list[Monitor]:
        """The host and this process: CPU (compiler and runner children included once they exit), context
        switches, page faults, memory. Hardware perf counters are not read (usually not readable unprivileged)."""
        return host_monitors()

    def evaluate(self, config: Config, fidelity: int | None = None) -> Measurement:
        repeats = self.resolve_fidelity(fidelity)
        if self._gpu is not None:
            saved, self._gpu.repeats = self._gpu.repeats, repeats
            try:
                m = self._gpu.evaluate(self.space().validate(config))
            finally:
                self._gpu.repeats = saved
            stamp(m.info, self.fidelity(), repeats, len(m.samples.get("seconds", [])))
            return m
        source = self.source(config)
        # KernelFailed / KernelTimeout propagate: the study records them as a failed trial
        report = run_spec(self._spec([{"name": "kernel", "kind": "c", "source": source}], repeats), timeout=self.timeout)
        k = report["kernels"]["kernel"]
        if "error" in k:
            raise KernelFailed(k["error"])
        metrics = {
            "gflops": k["gflops"],
            "seconds": k["seconds"],
            "spread": k["spread"],
            "best_gflops": k["best_gflops"],
            "err_ratio": k["err_ratio"],
            "compile_s": k.get("compile_s", 0.0),
        }
        info = {"clock": report["clock"], "cached": k.get("cached"), "threads": self.threads, "shape": list(self.shape)}
        stamp(info, self.fidelity(), repeats, len(k["samples"]))
        return Measurement(metrics=metrics, samples={"seconds": k["samples"]}, info=info)

    def baselines(self) -> dict[str, dict[str, float]]:
        """numpy (OpenBLAS, same thread count) and the naive triple loop, measured in one run."""
        if self._gpu is not None:
            return self._gpu.baselines()
        reports = self.measure_sources({"naive": self.naive_source()}, numpy=True)
        out = {}
        for name, k in reports.items():
            if "error" in k:
                continue
            out[name] = {"gflops": k["gflops"], "seconds": k["seconds"], "spread": k["spread"]}
        return out


def _pool(a: dict, b: dict) -> dict:
    """Merge two timing reports of the same kernel (median and spread over all samples)."""
    samples = list(a["samples"]) + list(b["samples"])
    med = float(np.median(samples))
    q1, q3 = np.percentile(samples, [25, 75])
    work = a["gflops"] * a["seconds"]
    return a | {"samples": samples, "seconds": med, "gflops": work / med, "spread": float((q3 - q1) / med),
                "best_gflops": work / float(min(samples))}
