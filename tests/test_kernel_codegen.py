"""Generated kernels: correct on awkward shapes, cached builds, and bad kernels contained in their child process."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from autosys_adapters.kernels import codegen
from autosys_adapters.kernels.compile import CompileError, compile_source
from autosys_adapters.kernels.runner import KernelFailed, KernelTimeout, run_spec

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler (gcc)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kernel-cache"))


def _spec(op, shape, kernels, cache, threads=1):
    return {"op": op, "shape": list(shape), "threads": threads, "repeats": 1, "warmup": 0,
            "min_sample_s": 0.0, "cache_dir": cache, "kernels": kernels}


MATMUL_SCHEDULES = [
    dict(isa="avx2", mr=6, nv=2, mc=48, kc=16, nc=32, order="jpi", inner="ji", pack_a=True, pack_b=True, unroll=4),
    dict(isa="avx2", mr=5, nv=1, mc=16, kc=32, nc=64, order="ipj", inner="ij", pack_a=False, pack_b=False, unroll=1),
    dict(isa="autovec", mr=3, nv=2, mc=32, kc=64, nc=128, order="pji", inner="ji", pack_a=True, pack_b=False, unroll=2),
    dict(isa="avx512", mr=7, nv=3, mc=64, kc=16, nc=512, order="jip", inner="ij", pack_a=False, pack_b=True, unroll=8),
]


def _usable(schedules):
    from autosys_adapters.kernels.cpu import cpu_info

    return [s for s in schedules if s["isa"] in cpu_info().isas]


MATMUL_PARS = ("outer", "inner", "collapse")


@pytest.mark.parametrize(
    "shape,threads",
    [((1, 1, 1), 1), ((17, 31, 13), 1), ((67, 5, 129), 2),
     pytest.param((1, 97, 3), 2, marks=pytest.mark.slow), pytest.param((130, 70, 300), 1, marks=pytest.mark.slow)],
)
def test_matmul_schedules_are_correct_on_odd_shapes(shape, threads, cache):
    # every schedule once; with threads, each takes the next way of splitting the work
    kernels = [
        {"name": f"s{i}", "kind": "c", "source": codegen.matmul_source(shape, dict(s, par=MATMUL_PARS[i % 3]), threads)}
        for i, s in enumerate(_usable(MATMUL_SCHEDULES))
    ]
    kernels.append({"name": "naive", "kind": "c", "source": codegen.naive_matmul_source(shape)})
    _assert_all_correct("matmul", shape, kernels, cache, threads)


def _assert_all_correct(op, shape, kernels, cache, threads):
    """Every kernel ran and matched numpy's float64 reference (the worker's check) within the fp32 bound."""
    report = run_spec(_spec(op, shape, kernels, cache, threads), timeout=120)
    assert set(report["kernels"]) == {k["name"] for k in kernels}
    for name, k in report["kernels"].items():
        assert "error" not in k, (name, k.get("error"))
        assert k["err_ratio"] <= 1.0 and k["gflops"] > 0


CONV_SCHEDULES = [
    dict(isa="avx2", rk=4, rq=2, tk=8, tc=2, tp=2, order="kcp", pack_w=True, unroll=1),
    dict(isa="autovec", rk=3, rq=1, tk=4, tc=4, tp=1, order="pck", pack_w=False, unroll=2),
    dict(isa="avx512", rk=2, rq=1, tk=16, tc=1, tp=4, order="cpk", pack_w=False, unroll=4),
]


@pytest.mark.parametrize(
    "shape,threads",
    [((1, 3, 7, 9, 5, 3, 2), 1), ((2, 5, 11, 37, 7, 3, 3), 2), ((1, 1, 1, 1, 1, 1, 1), 1),
     pytest.param((1, 16, 20, 45, 13, 5, 1), 2, marks=pytest.mark.slow)],
)
def test_conv2d_schedules_are_correct_on_odd_shapes(shape, threads, cache):
    kernels = [
        {"name": f"s{i}", "kind": "c", "source": codegen.conv2d_source(shape, dict(s, par="kp"[i % 2]), threads)}
        for i, s in enumerate(_usable(CONV_SCHEDULES))
    ]
    kernels.append({"name": "naive", "kind": "c", "source": codegen.naive_conv2d_source(shape)})
    _assert_all_correct("conv2d", shape, kernels, cache, threads)


GEMM_CONV_SCHEDULES = [
    {"isa": "avx2", "algo": "gemm", **{f"gemm_{k}": v for k, v in s.items() if k != "isa"}}
    for s in MATMUL_SCHEDULES[:2]
] + [{"isa": "avx512", "algo": "gemm", **{f"gemm_{k}": v for k, v in MATMUL_SCHEDULES[3].items() if k != "isa"}}]
# the nk layout: implicit im2col in the A panels, weights packed once by prepare() (small blocks: several of each)
GEMM_CONV_SCHEDULES += [dict(GEMM_CONV_SCHEDULES[0], gemm_layout="nk", gemm_mr=7, gemm_kc=16, gemm_nc=32),
                        dict(GEMM_CONV_SCHEDULES[1], gemm_layout="nk", gemm_order="pji")]
# nk_direct: the input read in place through tap offsets, row by row (tiles wider than a row, several blocks)
GEMM_CONV_SCHEDULES += [dict(GEMM_CONV_SCHEDULES[0], gemm_layout="nk_direct", gemm_mr=5, gemm_kc=16, gemm_nc=32),
                        dict(GEMM_CONV_SCHEDULES[2], gemm_layout="nk_direct", gemm_mr=13, gemm_nv=1)]


@pytest.mark.parametrize(
    "shape,threads",
    [((1, 3, 7, 9, 5, 3, 2), 1),          # im2col, stride 1
     ((2, 5, 11, 37, 7, 3, 3, 2), 2),     # stride 2, two images, odd widths
     ((1, 6, 13, 10, 9, 1, 1), 1),        # 1x1 stride 1: the bare matmul on the NCHW input, no im2col
     ((1, 4, 9, 9, 3, 1, 1, 3), 1),       # 1x1 stride 3: a strided gather
     ((2, 2, 8, 8, 5, 8, 8, 2), 2)],      # filter as large as the input
)
def test_gemm_conv2d_is_correct_on_odd_shapes_and_strides(shape, threads, cache):
    kernels = [
        {"name": f"g{i}", "kind": "c", "source": codegen.conv2d_source(shape, dict(s, gemm_par=MATMUL_PARS[i % 3]), threads)}
        for i, s in enumerate(_usable(GEMM_CONV_SCHEDULES))
    ]
    kernels.append({"name": "naive", "kind": "c", "source": codegen.naive_conv2d_source(shape)})
    _assert_all_correct("conv2d", shape, kernels, cache, threads)  # numpy's reference of the same stride


def test_a_1x1_stride_1_gemm_conv2d_needs_no_im2col_and_a_strided_one_does():
    schedule = GEMM_CONV_SCHEDULES[0]
    assert "aligned_alloc(64, " not in codegen.conv2d_source((1, 6, 13, 10, 9, 1, 1), schedule).split("void kernel")[1]
    assert "col = aligned_alloc" in codegen.conv2d_source((1, 6, 13, 10, 9, 1, 1, 2), schedule)
    nk = codegen.conv2d_source((1, 6, 13, 10, 9, 3, 3, 2), GEMM_CONV_SCHEDULES[3])
    assert "col = aligned_alloc" not in nk and "void prepare(" in nk  # implicit im2col; weights packed ahead
    direct = codegen.conv2d_source((1, 6, 13, 10, 9, 3, 3, 2), GEMM_CONV_SCHEDULES[5])
    assert "col = aligned_alloc" not in direct and "Ap" not in direct and "koff[k]" in direct  # nothing packed but weights
    with pytest.raises(ValueError, match="must be packed"):
        codegen.matmul_source((4, 4, 4), dict(MATMUL_SCHEDULES[1]), b_prepacked=True)


def test_the_direct_conv2d_refuses_a_stride_and_an_unknown_algorithm_is_named():
    with pytest.raises(ValueError, match="stride 1 only"):
        codegen.conv2d_source((1, 3, 9, 9, 4, 3, 3, 2), CONV_SCHEDULES[0])
    with pytest.raises(ValueError, match="unknown conv2d algorithm 'winograd'"):
        codegen.conv2d_source((1, 3, 9, 9, 4, 3, 3), dict(CONV_SCHEDULES[0], algo="winograd"))


def test_a_wrong_kernel_is_caught_by_the_check(cache):
    shape = (19, 23, 37)
    source = codegen.matmul_source(shape, MATMUL_SCHEDULES[0])
    wrong = source.replace("ukernel(kb,", "ukernel(kb - (kb > 1),")  # skips one step of every reduction block
    assert wrong != source
    report = run_spec(_spec("matmul", shape, [{"name": "w", "kind": "c", "source": wrong}], cache), timeout=60)
    assert "wrong result" in report["kernels"]["w"]["error"]


def test_compile_cache_is_reused(cache):
    source = codegen.naive_matmul_source((3, 4, 5)) + "/* cache test */\n"
    first = compile_source(source, cache)
    second = compile_source(source, cache)
    assert not first.cached and second.cached and first.path == second.path
    other = compile_source(source, cache, flags=("-O2", "-fPIC", "-shared"))
    assert other.path != first.path  # flags are part of the key
    # the child process finds the same library and reports it as cached
    kernels = [{"name": "k", "kind": "c", "source": source}]
    report = run_spec(_spec("matmul", (3, 4, 5), kernels, cache), timeout=60)
    assert report["kernels"]["k"]["cached"] is True
    assert report["kernels"]["k"]["library"] == str(first.path)


def test_compile_error_is_a_clear_failure(cache):
    with pytest.raises(CompileError, match="failed"):
        compile_source("this is not C", cache)
    kernels = [{"name": "k", "kind": "c", "source": "void kernel( {"}]
    with pytest.raises(KernelFailed, match="CompileError"):
        run_spec(_spec("matmul", (2, 2, 2), kernels, cache), timeout=60)


SEGFAULT = "void kernel(const float *A, const float *B, float *C) { *(volatile int *)0 = 1; }\n"
FOREVER = "void kernel(const float *A, const float *B, float *C) { for (;;) __asm__ volatile(\"\"); }\n"


def test_segfault_becomes_kernel_failed(cache):
    with pytest.raises(KernelFailed, match="SIGSEGV"):
        run_spec(_spec("matmul", (2, 2, 2), [{"name": "k", "kind": "c", "source": SEGFAULT}], cache), timeout=60)


def test_runaway_kernel_is_killed_at_its_deadline(cache):
    compile_source(FOREVER, cache)  # build first so the deadline measures the run
    with pytest.raises(KernelTimeout):
        run_spec(_spec("matmul", (2, 2, 2), [{"name": "k", "kind": "c", "source": FOREVER}], cache), timeout=3)


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match="missing"):
        codegen.matmul_source((4, 4, 4), {"isa": "avx2"})
    with pytest.raises(ValueError, match="loop order"):
        codegen.matmul_source((4, 4, 4), dict(MATMUL_SCHEDULES[0], order="xyz"))
    with pytest.raises(ValueError, match="isa"):
        codegen.conv2d_source((1, 1, 3, 3, 1, 1, 1), dict(CONV_SCHEDULES[0], isa="neon"))


def test_numpy_conv_reference_matches_a_direct_loop():
    from autosys_adapters.kernels.worker import make_operands, numpy_op

    a, b, _ = make_operands("conv2d", [2, 3, 6, 7, 4, 3, 2], seed=1)
    ref = np.zeros((2, 4, 4, 6))
    for n in range(2):
        for k in range(4):
            for p in range(4):
                for q in range(6):
                    ref[n, k, p, q] = np.sum(a[n, :, p : p + 3, q : q + 2] * b[k])
    assert np.allclose(numpy_op("conv2d", a, b), ref, atol=1e-4)
