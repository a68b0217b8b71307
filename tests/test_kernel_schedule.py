"""The kernel-schedule system: its space, real measurements, failures contained, cost model, CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autosys_adapters.kernels.system import KernelSchedule, parse_shape
from autosys_adapters.kernels.cost_model import KernelCostModel, KernelRecord, records_from_study
from autosys.core.space import InvalidConfig
from autosys.core.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler (gcc)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kernel-cache"))


def test_shapes_are_parsed_and_checked():
    assert parse_shape("matmul", "512,256,128") == (512, 256, 128)
    assert parse_shape("conv2d", "1,3,8,8,4,3,3") == (1, 3, 8, 8, 4, 3, 3)
    assert parse_shape("conv2d", "1,3,8,8,4,3,3,2") == (1, 3, 8, 8, 4, 3, 3, 2)
    assert parse_shape("conv2d", "1,3,8,8,4,3,3,1") == (1, 3, 8, 8, 4, 3, 3)  # stride 1 is the 7-number shape
    for op, bad in [("matmul", "1,2"), ("matmul", "0,2,3"), ("matmul", "a,b,c"), ("conv2d", "1,1,2,2,1,3,3"), ("conv2d", "1,3,8,8,4,3,3,0"),
                    ("conv2d", "1,3,8,8,4,3,3,2,1")]:
        with pytest.raises(ValueError, match="shape|filter"):
            parse_shape(op, bad)
    with pytest.raises(ValueError, match="unknown op"):
        KernelSchedule(op="fft")
    with pytest.raises(ValueError, match="backend"):
        KernelSchedule(backend="fpga")


@pytest.mark.parametrize("op,shape,threads", [("matmul", "64,64,64", 1), ("matmul", "64,64,64", 2), ("conv2d", "1,4,10,10,4,3,3", 2)])
def test_space_encodes_register_limits_and_every_sample_generates(op, shape, threads):
    system = KernelSchedule(op=op, shape=shape, threads=threads)
    space = system.space()
    assert space.is_valid(system.default())
    assert ("par" in space) == (threads > 1)
    rows, vecs = ("mr", "nv") if op == "matmul" else ("rk", "rq")
    too_big = dict(system.default(), isa="avx2", **{rows: 8 if op == "matmul" else 8, vecs: 4})
    if op == "conv2d":  # the direct kernel's register tile (the default is the gemm algorithm)
        too_big = {k: v for k, v in too_big.items() if not k.startswith("gemm_")} | {
            "algo": "direct", "tk": 16, "tc": 16, "tp": 4, "order": "kcp", "pack_w": True, "unroll": 1, "par": "k"}
    with pytest.raises(InvalidConfig, match="register_tile"):
        space.validate(too_big)
    rng = np.random.default_rng(0)
    widths = set()
    for _ in range(30):
        config = space.sample(rng)
        assert "void kernel(" in system.source(config)
        feats = system.features(config)
        assert np.all(np.isfinite(feats))
        widths.add(feats.size)
    assert widths == {len(system.feature_names())}


def test_omp_wait_policies_reach_the_worker_environment():
    from autosys_adapters.kernels.runner import child_env

    inherited = {"OMP_WAIT_POLICY": "PASSIVE", "PATH": "/bin"}
    spin = child_env(KernelSchedule(threads=2)._spec([]), base=inherited)  # the default: libgomp's spin, then sleep
    assert "OMP_WAIT_POLICY" not in spin and spin["GOMP_SPINCOUNT"] == "300000" and spin["OMP_NUM_THREADS"] == "2"
    assert child_env(KernelSchedule(omp_wait="active")._spec([]), base=inherited)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert child_env(KernelSchedule(omp_wait="passive")._spec([]), base={})["OMP_WAIT_POLICY"] == "PASSIVE"
    with pytest.raises(ValueError, match="omp_wait must be one of spin, passive, active"):
        KernelSchedule(omp_wait="yield")


def test_conv2d_space_offers_both_algorithms_and_a_strided_shape_only_gemm():
    plain = KernelSchedule(op="conv2d", shape="1,4,10,10,4,3,3")
    assert plain.space()["algo"].choices == ("direct", "gemm") and plain.default()["algo"] == "gemm"
    strided = KernelSchedule(op="conv2d", shape="1,4,11,11,4,3,3,2", threads=2)
    space = strided.space()
    assert space["algo"].choices == ("gemm",) and "rk" not in space and "gemm_par" in space
    with pytest.raises(InvalidConfig, match="gemm_register_tile"):
        space.validate(dict(strided.default(), isa="avx2", gemm_mr=8, gemm_nv=4))
    rng = np.random.default_rng(1)
    layouts = set()
    for _ in range(30):
        config = space.sample(rng)
        layouts.add(config["gemm_layout"])
        assert config["algo"] == "gemm" and "void kernel(" in strided.source(config)
        assert ("gemm_pack_a" in config) == (config["gemm_layout"] == "kn")  # only kn chooses what to pack
        assert ("gemm_mc" in config) == (config["gemm_layout"] != "nk_direct")  # nk_direct walks output rows
    assert layouts == {"kn", "nk", "nk_direct"}
    # the features of both algorithms line up (one cost model learns from both)
    plain_rng = np.random.default_rng(2)
    widths = {plain.features(plain.space().sample(plain_rng)).size for _ in range(20)} | {strided.features(strided.default()).size}
    assert widths == {len(plain.feature_names())}


@needs_gcc
def test_evaluate_measures_a_correct_kernel_and_baselines(cache):
    system = KernelSchedule(op="matmul", shape="33,65,17", repeats=2, cache_dir=cache)
    m = system.evaluate(system.default())
    assert m.metrics["gflops"] > 0 and m.metrics["err_ratio"] <= 1.0
    assert len(m.samples["seconds"]) == 2 and m.info["clock"] == "thread_cpu"
    base = system.baselines()
    assert set(base) == {"numpy", "naive"} and all(b["gflops"] > 0 for b in base.values())


class BrokenKernels(KernelSchedule):
    """Segfaults for unroll=2, never returns for unroll=4: the real code otherwise."""

    def source(self, config):
        if config["unroll"] == 2:
            return "void kernel(const float *A, const float *B, float *C) { *(volatile int *)0 = 1; }\n"
        if config["unroll"] == 4:
            return "void kernel(const float *A, const float *B, float *C) { for (;;) __asm__ volatile(\"\"); }\n"
        return super().source(config)


@needs_gcc
def test_crashing_and_runaway_kernels_fail_and_the_study_goes_on(tmp_path, cache):
    from autosys.run.study import Study

    system = BrokenKernels(op="matmul", shape="16,16,16", repeats=1, timeout=8, cache_dir=cache)
    study = Study.create(tmp_path / "s", system, tuner="random", budget=4, seed=0)
    default = system.default()
    for unroll in (2, 4, 1):
        study.tuner.enqueue(dict(default, unroll=unroll))
    study.run()
    trials = sorted(study.trials(), key=lambda t: t.number)
    assert len(trials) == 4
    by_unroll = {t.config["unroll"]: t for t in trials[1:]}
    assert by_unroll[2].state == TrialState.FAILED and "SIGSEGV" in by_unroll[2].error
    assert by_unroll[4].state in (TrialState.FAILED, TrialState.TIMED_OUT) and "deadline" in by_unroll[4].error
    assert by_unroll[1].state == TrialState.COMPLETE and by_unroll[1].value > 0
    assert study.best is not None
    records = records_from_study(tmp_path / "s")
    assert len(records) == 2 and all(r.shape == (16, 16, 16) for r in records)
    study.close()


def _synthetic(op_shape, n, seed):
    """Records whose speed follows a known rule of the schedule (for the model's mechanics)."""
    system = KernelSchedule(op="matmul", shape=op_shape)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c = system.space().sample(rng)
        speed = 5 + c["mr"] * c["nv"] * (2 if c["isa"] == "avx512" else 1) + (3 if c["pack_b"] else 0)
        out.append(KernelRecord("matmul", system.shape, c, float(speed)))
    return out


def test_cost_model_ranks_unseen_shapes_and_warm_starts():
    train = _synthetic("128,128,128", 120, 0) + _synthetic("512,512,512", 120, 1)
    test = _synthetic("300,200,100", 60, 2)
    model = KernelCostModel(n_estimators=150).fit(train)
    quality = model.ranking_quality(test)
    assert quality["pairwise_accuracy"] > 0.75 and quality["kendall_tau"] > 0.5
    secs = model.predict_seconds("matmul", (300, 200, 100), [r.config for r in test[:5]])
    assert secs.shape == (5,) and np.all(secs > 0)
    model.update(test[:20])
    assert len(model.records) == 260
    assert model.ranking_quality(test[20:])["pairwise_accuracy"] > 0.75


@needs_gcc
@pytest.mark.slow
def test_cli_tune_kernel_writes_json_with_baselines(tmp_path, cache):
    out = tmp_path / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "autosys", "tune", "kernel", "--op", "matmul", "--shape", "48,40,24", "--budget", "3",
         "--dir", str(tmp_path / "s"), "--json", str(out), "--quiet", "--repeats", "2", "--cache-dir", cache],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["system"] == "kernel"
    assert data["best"]["metrics"]["gflops"] > 0
    assert set(data["baselines"]) == {"numpy", "naive"}
    assert math.isfinite(data["baselines"]["numpy"]["gflops"])


@needs_gcc
@pytest.mark.slow
@pytest.mark.parametrize("op,shape,threads", [("matmul", "37,41,29", 2), ("conv2d", "2,7,13,19,11,3,2", 1),
                                             ("conv2d", "1,5,12,13,6,3,3,2", 2)])
def test_random_schedules_from_the_space_are_all_correct(op, shape, threads, cache):
    system = KernelSchedule(op=op, shape=shape, threads=threads, repeats=1, cache_dir=cache)
    rng = np.random.default_rng(42)
    sources = {f"c{i}": system.source(system.space().sample(rng)) for i in range(10)}
    for name, k in system.measure_sources(sources, repeats=1).items():
        assert "error" not in k, (name, k.get("error"))
        assert k["err_ratio"] <= 1.0
