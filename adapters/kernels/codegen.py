"""C source generated from a schedule: BLIS-style matmul, NCHW conv2d (direct, or im2col + that matmul), naive baselines.

Every generated kernel has the C signature

    void kernel(const float *A, const float *B, float *C)

with the problem shape baked in as constants (row-major fp32; for conv2d A is
the NCHW input, B the KCRS weights and C the NKPQ output, no padding; the
direct conv2d takes stride 1, the gemm conv2d any stride). Edges are guarded, never assumed: packed panels are zero padded,
unpacked operands use clamped row pointers whose extra rows are computed and
discarded, so any shape (primes, 1) is legal for any tile size.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from autosys_adapters.kernels.cpu import VECTOR_LANES, VECTOR_REGS
from autosys_adapters.kernels.shapes import conv_dims

#: loop orders of the three cache-blocking loops (j: columns of C, p: reduction, i: rows of C)
MATMUL_ORDERS = tuple("".join(p) for p in itertools.permutations("jpi"))
#: loop orders of the conv2d blocking loops (k: output channels, c: input channels, p: output rows)
CONV_ORDERS = tuple("".join(p) for p in itertools.permutations("kcp"))

_PRELUDE = """\
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#define MIN(a, b) ((a) < (b) ? (a) : (b))
"""


def registers_needed(rows: int, vectors: int) -> int:
    """Vector registers of an rows x vectors register tile: accumulators, B vectors, one broadcast."""
    return rows * vectors + vectors + 1


def register_limit(isa: str) -> int:
    return VECTOR_REGS[isa]


class _Simd:
    """Spelling of the few SIMD operations the micro-kernels use, per code path."""

    def __init__(self, isa: str):
        self.isa = isa
        self.lanes = VECTOR_LANES[isa]
        prefix = {"avx2": "_mm256", "avx512": "_mm512"}.get(isa)
        self.vtype = {"avx2": "__m256", "avx512": "__m512"}.get(isa)
        self.p = prefix

    def zero(self) -> str:
        return f"{self.p}_setzero_ps()"

    def load(self, addr: str) -> str:
        return f"{self.p}_loadu_ps({addr})"

    def store(self, addr: str, value: str) -> str:
        return f"{self.p}_storeu_ps({addr}, {value});"

    def bcast(self, value: str) -> str:
        return f"{self.p}_set1_ps({value})"

    def fma(self, a: str, b: str, c: str) -> str:
        return f"{self.p}_fmadd_ps({a}, {b}, {c})"

    def add(self, a: str, b: str) -> str:
        return f"{self.p}_add_ps({a}, {b})"


def _check(schedule: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in schedule]
    if missing:
        raise ValueError(f"{what} schedule is missing {', '.join(missing)}")
    isa = schedule["isa"]
    if isa not in VECTOR_LANES:
        raise ValueError(f"unknown isa {isa!r}; choose one of {', '.join(VECTOR_LANES)}")


# --------------------------------------------------------------------------- matmul

MATMUL_KEYS = ("isa", "mr", "nv", "mc", "kc", "nc", "order", "inner", "pack_a", "pack_b", "unroll")


def _matmul_ukernel(s: Mapping[str, Any], indexed: bool = False) -> str:
    """The register-blocked MR x NR micro-kernel: C[MR,NR] += A[MR,kc] @ B[kc,NR].

    `indexed`: A is read in place as A[i][k] = a[i * lda + koff[k]] (a
    conv2d's input: row i an output pixel, koff the offset of each (c, r, s)
    tap), with no packing at all; the kernel takes `koff` after `lda`.
    """
    isa, mr, nv = s["isa"], int(s["mr"]), int(s["nv"])
    simd = _Simd(isa)
    vw = simd.lanes
    nr = nv * vw
    if indexed:
        s = dict(s, pack_a=False)
        a_of = (lambda i: f"ar{i}[koff[k]]")  # noqa: E731
    else:
        a_of = (lambda i: f"a[k * {mr} + {i}]") if s["pack_a"] else (lambda i: f"ar{i}[k]")  # noqa: E731
    koff = " const long *restrict koff," if indexed else ""
    lines = [
        f"static inline void ukernel(int kc, const float *restrict a, long lda,{koff} const float *restrict b, long ldb,",
        "                           float *restrict c, long ldc, int mv, int nvalid, int first) {",
    ]
    if not s["pack_a"]:
        for i in range(mr):  # clamped rows: rows past the edge recompute the last valid row
            lines.append(f"  const float *ar{i} = a + (long)({i} < mv ? {i} : mv - 1) * lda;")
    else:
        lines.append("  (void)lda;")
    if isa == "autovec":
        lines += [
            f"  float acc[{mr}][{nr}] __attribute__((aligned(64)));",
            "  memset(acc, 0, sizeof(acc));",
            f"  #pragma GCC unroll {int(s['unroll'])}",
            "  for (int k = 0; k < kc; ++k) {",
            "    const float *bk = b + (long)k * ldb;",
        ]
        for i in range(mr):
            lines += [
                f"    {{ const float av = {a_of(i)};",
                "      #pragma GCC ivdep",
                f"      for (int j = 0; j < {nr}; ++j) acc[{i}][j] += av * bk[j]; }}",
            ]
        lines += [
            "  }",
            f"  if (first) for (int i = 0; i < mv; ++i) for (int j = 0; j < nvalid; ++j) c[i * ldc + j] = acc[i][j];",
            f"  else if (mv == {mr} && nvalid == {nr}) {{",
            f"    for (int i = 0; i < {mr}; ++i) {{",
            "      #pragma GCC ivdep",
            f"      for (int j = 0; j < {nr}; ++j) c[i * ldc + j] += acc[i][j];",
            "    }",
            "  } else {",
            "    for (int i = 0; i < mv; ++i) for (int j = 0; j < nvalid; ++j) c[i * ldc + j] += acc[i][j];",
            "  }",
            "}",
        ]
        return "\n".join(lines)
    acc = [[f"c{i}_{v}" for v in range(nv)] for i in range(mr)]
    for i in range(mr):
        lines.append("  " + simd.vtype + " " + ", ".join(f"{acc[i][v]} = {simd.zero()}" for v in range(nv)) + ";")
    lines += [
        f"  #pragma GCC unroll {int(s['unroll'])}",
        "  for (int k = 0; k < kc; ++k) {",
        "    const float *bk = b + (long)k * ldb;",
    ]
    for v in range(nv):
        lines.append(f"    const {simd.vtype} b{v} = {simd.load(f'bk + {v * vw}')};")
    for i in range(mr):
        lines.append(f"    {{ const {simd.vtype} av = {simd.bcast(a_of(i))};")
        for v in range(nv):
            lines.append(f"      {acc[i][v]} = {simd.fma('av', f'b{v}', acc[i][v])};")
        lines.append("    }")
    lines.append("  }")
    # the first reduction block stores (C needs no zeroing first), later ones accumulate
    lines.append(f"  if (mv == {mr} && nvalid == {nr}) {{")
    lines.append("    if (first) {")
    for i in range(mr):
        for v in range(nv):
            lines.append("      " + simd.store(f"c + {i} * ldc + {v * vw}", acc[i][v]))
    lines.append("    } else {")
    for i in range(mr):
        for v in range(nv):
            addr = f"c + {i} * ldc + {v * vw}"
            lines.append("      " + simd.store(addr, simd.add(simd.load(addr), acc[i][v])))
    lines.append("    }")
    lines += ["  } else {", f"    float buf[{mr * nr}] __attribute__((aligned(64)));"]
    for i in range(mr):
        for v in range(nv):
            lines.append("    " + simd.store(f"buf + {i * nr + v * vw}", acc[i][v]))
    lines += [
        f"    if (first) for (int i = 0; i < mv; ++i) for (int j = 0; j < nvalid; ++j) c[i * ldc + j] = buf[i * {nr} + j];",
        f"    else for (int i = 0; i < mv; ++i) for (int j = 0; j < nvalid; ++j) c[i * ldc + j] += buf[i * {nr} + j];",
        "  }",
        "}",
    ]
    return "\n".join(lines)


def matmul_source(shape: tuple[int, int, int], schedule: Mapping[str, Any], threads: int = 1, name: str = "kernel",
                  a_panel: list[str] | None = None, b_panel: list[str] | None = None, b_prepacked: bool = False) -> str:
    """C for C[M,N] = A[M,K] @ B[K,N] under `schedule` (see MATMUL_KEYS), as the function `name`.

    `a_panel` / `b_panel` replace how a packed panel is filled (C lines that
    write `dst` from rows i0..i0+h of A, or columns j0..j0+w of B, over the
    reduction block pc..pc+kb, zero padded), for operands that are not plain
    row-major matrices (a conv2d's input read as im2col, its weights
    transposed); the operand must then be packed. `b_prepacked`: B arrives
    already packed, every (NC, KC) block's panels at `prepacked_block`'s offset
    (see `prepack_b_source`), as a layer's constant weights are packed once.
    """
    _check(schedule, MATMUL_KEYS, "matmul")
    if (a_panel and not schedule["pack_a"]) or ((b_panel or b_prepacked) and not schedule["pack_b"]):
        raise ValueError("an operand read through a custom panel fill, or prepacked, must be packed")
    m, n, k = (int(x) for x in shape)
    s = dict(schedule)
    mr, nv = int(s["mr"]), int(s["nv"])
    nr = nv * VECTOR_LANES[s["isa"]]
    if s["order"] not in MATMUL_ORDERS:
        raise ValueError(f"unknown matmul loop order {s['order']!r}; choose one of {', '.join(MATMUL_ORDERS)}")
    if s["inner"] not in ("ji", "ij"):
        raise ValueError(f"unknown inner loop order {s['inner']!r}; choose 'ji' or 'ij'")
    # tile sizes are guarded: rounded up to a whole number of register tiles, capped by the problem
    mc = min(-(-int(s["mc"]) // mr) * mr, -(-m // mr) * mr)
    nc = min(-(-int(s["nc"]) // nr) * nr, -(-n // nr) * nr)
    kc = min(int(s["kc"]), k)
    par = s.get("par", "outer") if threads > 1 else None
    pack_a, pack_b = bool(s["pack_a"]), bool(s["pack_b"])
    omp = (lambda text: text) if par else (lambda text: "")

    out = [_PRELUDE, f"enum {{ M = {m}, N = {n}, K = {k}, MR = {mr}, NR = {nr}, MC = {mc}, NC = {nc}, KC = {kc} }};",
           "/* where the packed panels of B's block (jc, pc) start in a prepacked B */",
           "static inline long prepacked_block(int jc, int pc) {",
           "  return ((long)(jc / NC) * ((K + KC - 1) / KC) + pc / KC) * ((long)KC * NC);",
           "}"]
    out.append(_matmul_ukernel(s))
    body = [
        f"void {name}(const float *restrict A, const float *restrict B, float *restrict C) {{",
        "  float *Bp = aligned_alloc(64, sizeof(float) * (size_t)KC * NC + 64);" if pack_b and not b_prepacked else "  float *Bp = 0;",
        "  float *Ap = aligned_alloc(64, sizeof(float) * (size_t)KC * MC + 64);" if pack_a else "  float *Ap = 0;",
        omp(f"  #pragma omp parallel num_threads({threads})"),
        "  {",
        "  float *Be = aligned_alloc(64, sizeof(float) * (size_t)KC * NR + 64);" if not pack_b else "  float *Be = 0;",
    ]
    loop_of = {
        "j": "for (int jc = 0; jc < N; jc += NC) { const int nb = MIN(NC, N - jc);",
        "p": "for (int pc = 0; pc < K; pc += KC) { const int kb = MIN(KC, K - pc);",
        "i": "for (int ic = 0; ic < M; ic += MC) { const int mb = MIN(MC, M - ic);",
    }
    pack_b_code = [
        omp("#pragma omp for schedule(static)"),
        "for (int jp = 0; jp < (nb + NR - 1) / NR; ++jp) {",
        "  float *dst = Bp + (long)jp * kb * NR;",
        "  const int j0 = jc + jp * NR, w = MIN(NR, N - j0);",
        *(["  " + line for line in b_panel] if b_panel else [
            "  for (int kk = 0; kk < kb; ++kk) {",
            "    const float *src = B + (long)(pc + kk) * N + j0;",
            "    int j = 0;",
            "    for (; j < w; ++j) dst[kk * NR + j] = src[j];",
            "    for (; j < NR; ++j) dst[kk * NR + j] = 0.0f;",
            "  }"]),
        "}",
    ]
    pack_a_code = [
        omp("#pragma omp for schedule(static)"),
        "for (int ip = 0; ip < (mb + MR - 1) / MR; ++ip) {",
        "  float *dst = Ap + (long)ip * kb * MR;",
        "  const int i0 = ic + ip * MR, h = MIN(MR, M - i0);",
        *(["  " + line for line in a_panel] if a_panel else [
            "  for (int ii = 0; ii < MR; ++ii) {",
            "    if (ii < h) { const float *src = A + (long)(i0 + ii) * K + pc;",
            "      for (int kk = 0; kk < kb; ++kk) dst[kk * MR + ii] = src[kk]; }",
            "    else { for (int kk = 0; kk < kb; ++kk) dst[kk * MR + ii] = 0.0f; }",
            "  }"]),
        "}",
    ]
    outer_inner = ("jr", "ir") if s["inner"] == "ji" else ("ir", "jr")
    inner_loop = {
        "jr": "for (int jr = 0; jr < nb; jr += NR) {",
        "ir": "for (int ir = 0; ir < mb; ir += MR) {",
    }
    a_ptr = "Ap + (long)(ir / MR) * kb * MR" if pack_a else "A + (long)(ic + ir) * K + pc"
    if pack_b:
        b_setup = [f"const float *b = {'B + prepacked_block(jc, pc)' if b_prepacked else 'Bp'} + (long)(jr / NR) * kb * NR;"
                   " const long ldb = NR;"]
    else:
        b_setup = [
            "const float *b = B + (long)pc * N + jc + jr; long ldb = N;",
            "if (nvalid < NR) {  /* edge panel: copy into a zero-padded scratch panel */",
            "  for (int kk = 0; kk < kb; ++kk) { int j = 0;",
            "    for (; j < nvalid; ++j) Be[kk * NR + j] = b[(long)kk * N + j];",
            "    for (; j < NR; ++j) Be[kk * NR + j] = 0.0f; }",
            "  b = Be; ldb = NR;",
            "}",
        ]
    macro = []
    if par == "outer":
        macro.append("#pragma omp for schedule(static)")
    elif par == "collapse":
        macro.append("#pragma omp for collapse(2) schedule(static)")
    macro.append(inner_loop[outer_inner[0]])
    if par == "inner":
        macro.append("#pragma omp for schedule(static) nowait")
    macro += [
        "  " + inner_loop[outer_inner[1]],
        "    const int mv = MIN(MR, mb - ir), nvalid = MIN(NR, nb - jr);",
        *("    " + line for line in b_setup),
        f"    ukernel(kb, {a_ptr}, K, b, ldb, C + (long)(ic + ir) * N + jc + jr, N, mv, nvalid, pc == 0);",
        "  }",
        "}",
    ]
    if par == "inner":
        macro.append("#pragma omp barrier")

    # open the three blocking loops in the chosen order; pack each operand as soon as its block is fixed
    bound: set[str] = set()
    emitted: set[str] = set()
    indent = "  "
    for letter in s["order"]:
        body.append(indent + loop_of[letter])
        bound.add(letter)
        indent += "  "
        if pack_b and not b_prepacked and "b" not in emitted and {"j", "p"} <= bound:
            body += [indent + line for line in pack_b_code]
            emitted.add("b")
        if pack_a and "a" not in emitted and {"i", "p"} <= bound:
            body += [indent + line for line in pack_a_code]
            emitted.add("a")
    body += [indent + line for line in macro]
    for _ in s["order"]:
        indent = indent[:-2]
        body.append(indent + "}")
    body += ["  free(Be);", "  }", "  free(Ap); free(Bp);", "}"]
    out.append("\n".join(line for line in body if line.strip()))
    return "\n\n".join(out) + "\n"


def prepack_b_source(b_panel: list[str], name: str = "prepare") -> str:
    """C for `void name(const float *B)`: B packed once, every block's panels at `prepacked_block`, into the static
    buffer `wpack` (for `matmul_source(..., b_prepacked=True)`; follows it in the same file)."""
    return "\n".join([
        "static float *wpack;  /* B packed once: see prepacked_block */",
        f"void {name}(const float *restrict B) {{",
        "  const long size = prepacked_block(0, 0) + (long)((N + NC - 1) / NC) * ((K + KC - 1) / KC) * KC * NC;",
        "  if (!wpack) wpack = aligned_alloc(64, (size_t)(size * sizeof(float) + 63) / 64 * 64);",
        "  for (int jc = 0; jc < N; jc += NC) { const int nb = MIN(NC, N - jc);",
        "    for (int pc = 0; pc < K; pc += KC) { const int kb = MIN(KC, K - pc);",
        "      float *Bp = wpack + prepacked_block(jc, pc);",
        "      for (int jp = 0; jp < (nb + NR - 1) / NR; ++jp) {",
        "        float *dst = Bp + (long)jp * kb * NR;",
        "        const int j0 = jc + jp * NR, w = MIN(NR, N - j0);",
        *("        " + line for line in b_panel),
        "      }",
        "    }",
        "  }",
        "}",
    ])


def naive_matmul_source(shape: tuple[int, int, int]) -> str:
    """The textbook i-j-k triple loop: the floor every schedule must beat."""
    m, n, k = (int(x) for x in shape)
    return (
        _PRELUDE
        + f"""
enum {{ M = {m}, N = {n}, K = {k} }};
void kernel(const float *restrict A, const float *restrict B, float *restrict C) {{
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {{
      float acc = 0.0f;
      for (int k = 0; k < K; ++k) acc += A[(long)i * K + k] * B[(long)k * N + j];
      C[(long)i * N + j] = acc;
    }}
}}
"""
    )


# --------------------------------------------------------------------------- conv2d

CONV_KEYS = ("isa", "rk", "rq", "tk", "tc", "tp", "order", "pack_w", "unroll")
#: how a conv2d is computed: direct loops over the NCHW tensors, or as one matmul per image (im2col)
CONV_ALGOS = ("direct", "gemm")
#: the gemm algorithm's knobs: the matmul's (MATMUL_KEYS but isa), prefixed
GEMM_PREFIX = "gemm_"
#: how a gemm conv2d lays out its product: out = W @ col (`kn`), out^T = col^T @ W^T (`nk`, implicit im2col),
#: or that product read straight from the input (`nk_direct`): see conv2d_gemm_source
GEMM_LAYOUTS = ("kn", "nk", "nk_direct")


def conv_out_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    d = conv_dims(shape)
    return d.p, d.q


def conv2d_source(shape: tuple[int, ...], schedule: Mapping[str, Any], threads: int = 1) -> str:
    """C for an NCHW conv2d, no padding, by the schedule's algorithm: `direct` (stride 1) or `gemm` (any stride)."""
    algo = schedule.get("algo", "direct")
    if algo == "gemm":
        return conv2d_gemm_source(shape, schedule, threads)
    if algo != "direct":
        raise ValueError(f"unknown conv2d algorithm {algo!r}; choose one of {', '.join(CONV_ALGOS)}")
    return conv2d_direct_source(shape, schedule, threads)


def conv2d_direct_source(shape: tuple[int, ...], schedule: Mapping[str, Any], threads: int = 1) -> str:
    """C for a direct NCHW conv2d, stride 1, no padding: out[n,k,p,q] = sum_{c,r,s} in[n,c,p+r,q+s] w[k,c,r,s]."""
    _check(schedule, CONV_KEYS, "conv2d")
    if conv_dims(shape).stride != 1:
        raise ValueError("the direct conv2d computes stride 1 only; the gemm algorithm takes any stride")
    bn, c_, h, w_, k_, r_, s_ = conv_dims(shape)[:7]
    p_, q_ = conv_out_shape(shape)
    s = dict(schedule)
    isa, rk, rq = s["isa"], int(s["rk"]), int(s["rq"])
    simd = _Simd(isa)
    vw = simd.lanes
    qt = rq * vw  # output columns per register tile
    tk = min(-(-int(s["tk"]) // rk) * rk, -(-k_ // rk) * rk)
    tc = min(int(s["tc"]), c_)
    tp = min(int(s["tp"]), p_)
    if s["order"] not in CONV_ORDERS:
        raise ValueError(f"unknown conv2d loop order {s['order']!r}; choose one of {', '.join(CONV_ORDERS)}")
    par = s.get("par", "k") if threads > 1 else None
    pack_w = bool(s["pack_w"])
    kpad = -(-k_ // rk) * rk
    out = [
        _PRELUDE,
        f"enum {{ BN = {bn}, C = {c_}, H = {h}, W = {w_}, K = {k_}, R = {r_}, S = {s_}, P = {p_}, Q = {q_},"
        f" RK = {rk}, QT = {qt}, TK = {tk}, TC = {tc}, TP = {tp}, KPAD = {kpad} }};",
    ]
    # weights of channel k, input channel c, tap (r, s); packed: [K/RK][C][R][S][RK], zero padded
    if pack_w:
        wexpr = lambda kk: f"wk[(((long)c * R + r) * S + s) * RK + {kk}]"  # noqa: E731
        wbase = "const float *wk = Wp + (long)(k0 / RK) * C * R * S * RK;"
    else:
        wexpr = lambda kk: f"wr{kk}[((long)c * R + r) * S + s]"  # noqa: E731
        wbase = " ".join(
            f"const float *wr{kk} = Wt + (long)(k0 + ({kk} < kv ? {kk} : kv - 1)) * C * R * S;" for kk in range(rk)
        )
    uk = [
        "static inline void ukernel(const float *restrict in, const float *restrict Wp, const float *restrict Wt,",
        "                           float *restrict o, int k0, int kv, int c0, int cb, int p, int q0) {",
        f"  {wbase}",
        "  (void)Wp; (void)Wt;",
    ]
    if isa == "autovec":
        uk += [
            f"  float acc[{rk}][{qt}] __attribute__((aligned(64)));",
            "  memset(acc, 0, sizeof(acc));",
            "  for (int c = c0; c < c0 + cb; ++c) for (int r = 0; r < R; ++r) {",
            "    const float *row = in + ((long)c * H + p + r) * W + q0;",
            f"    #pragma GCC unroll {int(s['unroll'])}",
            "    for (int s = 0; s < S; ++s) {",
        ]
        for kk in range(rk):
            uk += [
                f"      {{ const float wv = {wexpr(kk)};",
                "        #pragma GCC ivdep",
                f"        for (int j = 0; j < {qt}; ++j) acc[{kk}][j] += wv * row[s + j]; }}",
            ]
        uk += [
            "    }",
            "  }",
            f"  for (int kk = 0; kk < kv; ++kk) {{ float *ok = o + ((long)(k0 + kk) * P + p) * Q + q0;",
            "    #pragma GCC ivdep",
            f"    for (int j = 0; j < {qt}; ++j) ok[j] += acc[kk][j]; }}",
            "}",
        ]
    else:
        acc = [[f"c{kk}_{v}" for v in range(rq)] for kk in range(rk)]
        for kk in range(rk):
            uk.append("  " + simd.vtype + " " + ", ".join(f"{acc[kk][v]} = {simd.zero()}" for v in range(rq)) + ";")
        uk += [
            "  for (int c = c0; c < c0 + cb; ++c) for (int r = 0; r < R; ++r) {",
            "    const float *row = in + ((long)c * H + p + r) * W + q0;",
            f"    #pragma GCC unroll {int(s['unroll'])}",
            "    for (int s = 0; s < S; ++s) {",
        ]
        for v in range(rq):
            uk.append(f"      const {simd.vtype} x{v} = {simd.load(f'row + s + {v * vw}')};")
        for kk in range(rk):
            uk.append(f"      {{ const {simd.vtype} wv = {simd.bcast(wexpr(kk))};")
            for v in range(rq):
                uk.append(f"        {acc[kk][v]} = {simd.fma('wv', f'x{v}', acc[kk][v])};")
            uk.append("      }")
        uk += ["    }", "  }"]
        for kk in range(rk):
            guard = "" if kk == 0 else f"if (kv > {kk}) "
            stores = " ".join(
                simd.store(f"ok + {v * vw}", simd.add(simd.load(f"ok + {v * vw}"), acc[kk][v])) for v in range(rq)
            )
            uk.append(f"  {guard}{{ float *ok = o + ((long)(k0 + {kk}) * P + p) * Q + q0; {stores} }}")
        uk.append("}")
    out.append("\n".join(uk))
    # columns past the last whole register tile: plain C, still correct for any width
    out.append(
        """static void tail(const float *restrict in, const float *restrict Wt, float *restrict o,
                 int k0, int kv, int c0, int cb, int p, int q0) {
  for (int kk = 0; kk < kv; ++kk) {
    float *ok = o + ((long)(k0 + kk) * P + p) * Q;
    const float *wk = Wt + (long)(k0 + kk) * C * R * S;
    for (int q = q0; q < Q; ++q) {
      float acc = 0.0f;
      for (int c = c0; c < c0 + cb; ++c) for (int r = 0; r < R; ++r) for (int s = 0; s < S; ++s)
        acc += in[((long)c * H + p + r) * W + q + s] * wk[((long)c * R + r) * S + s];
      ok[q] += acc;
    }
  }
}"""
    )
    loops = {
        "k": "for (int kt = kbeg; kt < kend; kt += TK) { const int kte = MIN(kt + TK, kend);",
        "c": "for (int ct = 0; ct < C; ct += TC) { const int cb = MIN(TC, C - ct);",
        "p": "for (int pt = pbeg; pt < pend; pt += TP) { const int pte = MIN(pt + TP, pend);",
    }
    body = [
        "void kernel(const float *restrict A, const float *restrict B, float *restrict Cout) {",
        "  memset(Cout, 0, sizeof(float) * (size_t)BN * K * P * Q);",
    ]
    if pack_w:
        body += [
            "  float *Wp = aligned_alloc(64, sizeof(float) * (size_t)KPAD * C * R * S + 64);",
            "  for (int kb = 0; kb < KPAD / RK; ++kb) for (long crs = 0; crs < (long)C * R * S; ++crs)",
            "    for (int kk = 0; kk < RK; ++kk) { const int k = kb * RK + kk;",
            "      Wp[((long)kb * C * R * S + crs) * RK + kk] = k < K ? B[(long)k * C * R * S + crs] : 0.0f; }",
        ]
    else:
        body.append("  float *Wp = 0;")
    if par:
        body += [f"  #pragma omp parallel num_threads({threads})", "  {", "  const int nt = omp_get_num_threads(), t = omp_get_thread_num();"]
    else:
        body += ["  {", "  const int nt = 1, t = 0;"]
    # each thread owns a contiguous slice of output channels (par=k) or output rows (par=p): no races
    if par == "p":
        body += [
            "  const int kbeg = 0, kend = K;",
            "  const int pch = (P + nt - 1) / nt, pbeg = MIN(P, t * pch), pend = MIN(P, pbeg + pch);",
        ]
    else:
        body += [
            "  const int kch = ((K + nt - 1) / nt + RK - 1) / RK * RK;",
            "  const int kbeg = MIN(K, t * kch), kend = MIN(K, kbeg + kch);",
            "  const int pbeg = 0, pend = P;",
        ]
    body += ["  for (int n = 0; n < BN; ++n) {", "  const float *in = A + (long)n * C * H * W;",
             "  float *o = Cout + (long)n * K * P * Q;"]
    indent = "  "
    for letter in s["order"]:
        body.append(indent + loops[letter])
        indent += "  "
    body += [
        indent + "for (int k0 = kt; k0 < kte; k0 += RK) { const int kv = MIN(RK, kte - k0);",
        indent + "  for (int p = pt; p < pte; ++p) {",
        indent + "    int q0 = 0;",
        indent + "    for (; q0 + QT <= Q; q0 += QT) ukernel(in, Wp, B, o, k0, kv, ct, cb, p, q0);",
        indent + "    if (q0 < Q) tail(in, B, o, k0, kv, ct, cb, p, q0);",
        indent + "  }",
        indent + "}",
    ]
    for _ in s["order"]:
        indent = indent[:-2]
        body.append(indent + "}")
    body += ["  }", "  (void)nt; (void)t;", "  }"]
    body += ["  free(Wp);" if pack_w else "", "}"]
    out.append("\n".join(line for line in body if line.strip()))
    return "\n\n".join(out) + "\n"


def naive_conv2d_source(shape: tuple[int, ...]) -> str:
    """Seven nested loops in the textbook order: the conv2d floor."""
    bn, c_, h, w_, k_, r_, s_, st = conv_dims(shape)
    p_, q_ = conv_out_shape(shape)
    return (
        _PRELUDE
        + f"""
enum {{ BN = {bn}, C = {c_}, H = {h}, W = {w_}, K = {k_}, R = {r_}, S = {s_}, P = {p_}, Q = {q_}, ST = {st} }};
void kernel(const float *restrict A, const float *restrict B, float *restrict O) {{
  for (int n = 0; n < BN; ++n) for (int k = 0; k < K; ++k)
    for (int p = 0; p < P; ++p) for (int q = 0; q < Q; ++q) {{
      float acc = 0.0f;
      for (int c = 0; c < C; ++c) for (int r = 0; r < R; ++r) for (int s = 0; s < S; ++s)
        acc += A[(((long)n * C + c) * H + p * ST + r) * W + q * ST + s] * B[(((long)k * C + c) * R + r) * S + s];
      O[(((long)n * K + k) * P + p) * Q + q] = acc;
    }}
}}
"""
    )


#: what each gemm layout fixes rather than tunes: nk reads both operands only through packed panels; nk_direct packs
#: only the weights and walks the output row by row (no row blocking or loop order to choose)
GEMM_LAYOUT_FIXED = {
    "kn": {},
    "nk": {"pack_a": True, "pack_b": True},
    "nk_direct": {"pack_a": False, "pack_b": True, "mc": 16, "order": "jpi", "inner": "ji"},
}


def gemm_schedule(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The matmul schedule inside a gemm conv2d schedule: its `gemm_*` knobs, unprefixed, the shared isa, and
    what its layout fixes (`GEMM_LAYOUT_FIXED`)."""
    inner = {k[len(GEMM_PREFIX):]: v for k, v in schedule.items() if k.startswith(GEMM_PREFIX)}
    return {"isa": schedule["isa"], **inner, **GEMM_LAYOUT_FIXED.get(inner.get("layout", "kn"), {})}


def conv2d_gemm_source(shape: tuple[int, ...], schedule: Mapping[str, Any], threads: int = 1) -> str:
    """C for an NCHW conv2d of any stride as one generated matmul per image, in the schedule's `gemm_layout`:

    * `kn`: out[K, PQ] = W[K, CRS] @ col[CRS, PQ]. KCRS weights are already the
      row-major [K, CRS] operand; `col` is the input unrolled (im2col), written
      into a buffer allocated on the first call and kept. A 1x1, stride-1
      convolution needs none (the NCHW input is [C, HW] already).
    * `nk`: out^T[PQ, K] = col^T[PQ, CRS] @ W^T[CRS, K], the input read
      straight into the packed A panels (implicit im2col: no col buffer), the
      product transposed into the NCHW output at the end. Output pixels are
      the rows here, so a 7x7 map (49 = 7 x 7) fills whole register tiles
      where, as columns, it would waste a quarter of them. The weights are
      packed once, by `prepare(B)`, which the worker calls before the first
      run (a framework packs a layer's constant weights when it loads the
      model; oneDNN's blocked layouts are timed the same way).
    * `nk_direct`: the `nk` product with no im2col at all, packed or not: the
      micro-kernel broadcasts each output pixel's input value straight from
      the NCHW input through a table of tap offsets (a direct convolution,
      register-blocked over output pixels of one row and output channels).
    """
    layout = schedule.get("gemm_layout", "kn")
    if layout == "nk":
        return _conv2d_gemm_nk_source(shape, schedule, threads)
    if layout == "nk_direct":
        return _conv2d_nk_direct_source(shape, schedule, threads)
    if layout != "kn":
        raise ValueError(f"unknown gemm layout {layout!r}; choose one of {', '.join(GEMM_LAYOUTS)}")
    d = conv_dims(shape)
    gemm = gemm_schedule(schedule)
    _check(gemm, MATMUL_KEYS, "conv2d gemm")
    p_, q_ = d.p, d.q
    pq, crs = p_ * q_, d.c * d.r * d.s
    bare = d.r == 1 and d.s == 1 and d.stride == 1
    out = [matmul_source((d.k, pq, crs), gemm, threads, name="gemm")]
    par = f"  #pragma omp parallel for num_threads({threads}) schedule(static)" if threads > 1 else ""
    if d.stride == 1:
        row = f"memcpy(dst + (long)p * {q_}, src, sizeof(float) * {q_});"
    else:
        row = f"for (int q = 0; q < {q_}; ++q) dst[(long)p * {q_} + q] = src[(long)q * {d.stride}];"
    body = [
        "static float *col;  /* the im2col buffer: allocated on the first call, kept for the next */",
        "void kernel(const float *restrict A, const float *restrict B, float *restrict Cout) {",
    ]
    if not bare:
        size = -(-(crs * pq * 4) // 64) * 64
        body += [f"  if (!col) col = aligned_alloc(64, {size});"]
    body.append(f"  for (int n = 0; n < {d.n}; ++n) {{")
    body.append(f"    const float *in = A + (long)n * {d.c * d.h * d.w};")
    if bare:
        body.append(f"    gemm(B, in, Cout + (long)n * {d.k * pq});")
    else:
        body += [
            par,
            f"    for (int crs = 0; crs < {crs}; ++crs) {{",
            f"      const int c = crs / {d.r * d.s}, r = crs / {d.s} % {d.r}, s = crs % {d.s};",
            f"      float *dst = col + (long)crs * {pq};",
            f"      for (int p = 0; p < {p_}; ++p) {{",
            f"        const float *src = in + ((long)c * {d.h} + (long)p * {d.stride} + r) * {d.w} + s;",
            f"        {row}",
            "      }",
            "    }",
            f"    gemm(B, col, Cout + (long)n * {d.k * pq});",
        ]
    body += ["  }", "}"]
    out.append("\n".join(line for line in body if line.strip()))
    return "\n\n".join(out) + "\n"


def _conv2d_gemm_nk_source(shape: tuple[int, ...], schedule: Mapping[str, Any], threads: int) -> str:
    """The `nk` layout of `conv2d_gemm_source`: implicit im2col in the A panels, transposed weights in the B panels."""
    d = conv_dims(shape)
    gemm = gemm_schedule(schedule)  # both operands exist only as packed panels
    _check(gemm, MATMUL_KEYS, "conv2d gemm")
    pq, crs = d.p * d.q, d.c * d.r * d.s
    # A[i = output pixel, k = (c, r, s)] = in[c][p*stride + r][q*stride + s]: offsets of the panel's pixels
    # once, then one gather per reduction step (contiguous for a 1x1, stride-1 conv)
    if d.r == 1 and d.s == 1 and d.stride == 1:
        a_panel = [
            "for (int kk = 0; kk < kb; ++kk) {",
            f"  const float *src = conv_in + (long)(pc + kk) * {pq} + i0;",
            "  int ii = 0;",
            "  for (; ii < h; ++ii) dst[kk * MR + ii] = src[ii];",
            "  for (; ii < MR; ++ii) dst[kk * MR + ii] = 0.0f;",
            "}",
        ]
    else:
        a_panel = [
            "long off[MR];",
            f"for (int ii = 0; ii < h; ++ii) {{ const int px = i0 + ii, p = px / {d.q}, q = px % {d.q};",
            f"  off[ii] = (long)p * {d.stride * d.w} + (long)q * {d.stride}; }}",
            "/* a whole panel on one output row reads one evenly strided run of every input row: a fixed-length copy */",
            f"const int run = h == MR && off[MR - 1] - off[0] == (MR - 1) * {d.stride};",
            "for (int kk = 0; kk < kb; ++kk) {",
            f"  const int rs = (pc + kk) % {d.r * d.s}, c = (pc + kk) / {d.r * d.s};",
            f"  const float *src = conv_in + ((long)c * {d.h} + rs / {d.s}) * {d.w} + rs % {d.s};",
            "  if (run) {",
            "    const float *s0 = src + off[0];",
            f"    for (int ii = 0; ii < MR; ++ii) dst[kk * MR + ii] = s0[ii * {d.stride}];",
            "    continue;",
            "  }",
            "  int ii = 0;",
            "  for (; ii < h; ++ii) dst[kk * MR + ii] = src[off[ii]];",
            "  for (; ii < MR; ++ii) dst[kk * MR + ii] = 0.0f;",
            "}",
        ]
    # B[k = (c, r, s), j = output channel] = W[j][c, r, s]: each channel's weights are contiguous
    b_panel = [
        "int j = 0;",
        f"for (; j < w; ++j) {{ const float *src = B + (long)(j0 + j) * {crs} + pc;",
        "  for (int kk = 0; kk < kb; ++kk) dst[kk * NR + j] = src[kk]; }",
        "for (; j < NR; ++j) for (int kk = 0; kk < kb; ++kk) dst[kk * NR + j] = 0.0f;",
    ]
    out = ["static const float *conv_in;  /* the image being convolved, read by the A panels */",
           matmul_source((pq, d.k, crs), gemm, threads, name="gemm", a_panel=a_panel, b_prepacked=True),
           prepack_b_source(b_panel)]
    par = f"  #pragma omp parallel for num_threads({threads}) schedule(static)" if threads > 1 else ""
    size = -(-(pq * d.k * 4) // 64) * 64
    out.append("\n".join(line for line in [
        "static float *prod;  /* out^T [PQ, K]: allocated on the first call, kept for the next */",
        "void kernel(const float *restrict A, const float *restrict B, float *restrict Cout) {",
        f"  if (!prod) prod = aligned_alloc(64, {size});",
        f"  for (int n = 0; n < {d.n}; ++n) {{",
        f"    conv_in = A + (long)n * {d.c * d.h * d.w};",
        "    gemm(0, wpack, prod);",
        f"    float *o = Cout + (long)n * {d.k * pq};",
        "    /* transpose [PQ, K] -> [K, PQ] in 32 x 32 blocks */",
        par,
        f"    for (int k0 = 0; k0 < {d.k}; k0 += 32)",
        f"      for (int x0 = 0; x0 < {pq}; x0 += 32)",
        f"        for (int k = k0; k < MIN(k0 + 32, {d.k}); ++k)",
        f"          for (int x = x0; x < MIN(x0 + 32, {pq}); ++x) o[(long)k * {pq} + x] = prod[(long)x * {d.k} + k];",
        "  }",
        "}",
    ] if line.strip()))
    return "\n\n".join(out) + "\n"


def _conv2d_nk_direct_source(shape: tuple[int, ...], schedule: Mapping[str, Any], threads: int) -> str:
    """The `nk_direct` layout of `conv2d_gemm_source`: out^T[PQ, K] tile by tile, A read in place through tap offsets."""
    d = conv_dims(shape)
    gemm = gemm_schedule(schedule)
    _check(gemm, MATMUL_KEYS, "conv2d gemm")
    mr, nr = int(gemm["mr"]), int(gemm["nv"]) * VECTOR_LANES[gemm["isa"]]
    pq, crs = d.p * d.q, d.c * d.r * d.s
    nc = min(-(-int(gemm["nc"]) // nr) * nr, -(-d.k // nr) * nr)
    kc = min(int(gemm["kc"]), crs)
    omp = (lambda pragma: pragma) if threads > 1 else (lambda pragma: "")  # noqa: E731
    b_panel = [
        "int j = 0;",
        f"for (; j < w; ++j) {{ const float *src = B + (long)(j0 + j) * {crs} + pc;",
        "  for (int kk = 0; kk < kb; ++kk) dst[kk * NR + j] = src[kk]; }",
        "for (; j < NR; ++j) for (int kk = 0; kk < kb; ++kk) dst[kk * NR + j] = 0.0f;",
    ]
    head = [
        _PRELUDE,
        f"enum {{ M = {pq}, N = {d.k}, K = {crs}, MR = {mr}, NR = {nr}, NC = {nc}, KC = {kc} }};",
        "static inline long prepacked_block(int jc, int pc) {",
        "  return ((long)(jc / NC) * ((K + KC - 1) / KC) + pc / KC) * ((long)KC * NC);",
        "}",
        "static long koff[K];  /* input offset of each reduction step (c, r, s): filled by prepare() */",
    ]
    body = [
        "static float *prod;   /* out^T [PQ, K] */",
        "void kernel(const float *restrict A, const float *restrict B, float *restrict Cout) {",
        "  (void)B;",
        f"  if (!prod) prod = aligned_alloc(64, {-(-(pq * d.k * 4) // 64) * 64});",
        # one parallel region per call: every block's rows split alike (static schedule, same trip count), so a
        # thread accumulates only into rows it wrote itself and needs no barrier until the transpose
        omp(f"  #pragma omp parallel num_threads({threads})"),
        "  {",
        f"  for (int n = 0; n < {d.n}; ++n) {{",
        f"    const float *in = A + (long)n * {d.c * d.h * d.w};",
        "    for (int jc = 0; jc < N; jc += NC) { const int nb = MIN(NC, N - jc);",
        "      for (int pc = 0; pc < K; pc += KC) { const int kb = MIN(KC, K - pc);",
        "        const float *bblock = wpack + prepacked_block(jc, pc);",
        omp("        #pragma omp for schedule(static) nowait"),
        f"        for (int p = 0; p < {d.p}; ++p)",
        f"          for (int q0 = 0; q0 < {d.q}; q0 += MR) {{",
        f"            const int mv = MIN(MR, {d.q} - q0);",
        f"            const float *a = in + (long)p * {d.stride * d.w} + (long)q0 * {d.stride};",
        f"            float *c = prod + ((long)p * {d.q} + q0) * N + jc;",
        "            for (int jr = 0; jr < nb; jr += NR)",
        f"              ukernel(kb, a, {d.stride}, koff + pc, bblock + (long)(jr / NR) * kb * NR, NR, c + jr, N, mv,"
        " MIN(NR, nb - jr), pc == 0);",
        "          }",
        "      }",
        "    }",
        omp("    #pragma omp barrier"),
        f"    float *o = Cout + (long)n * {d.k * pq};",
        omp("    #pragma omp for schedule(static)"),
        "    for (int k0 = 0; k0 < N; k0 += 32)",
        "      for (int x0 = 0; x0 < M; x0 += 32)",
        "        for (int k = k0; k < MIN(k0 + 32, N); ++k)",
        "          for (int x = x0; x < MIN(x0 + 32, M); ++x) o[(long)k * M + x] = prod[(long)x * N + k];",
        "  }",
        "  }",
        "}",
    ]
    prepare = prepack_b_source(b_panel).replace(
        "void prepare(const float *restrict B) {",
        "void prepare(const float *restrict B) {\n"
        f"  for (int t = 0; t < K; ++t) koff[t] = (long)(t / {d.r * d.s}) * {d.h * d.w} + (long)(t / {d.s} % {d.r}) * {d.w}"
        f" + t % {d.s};",
    )
    return "\n\n".join(["\n".join(head), _matmul_ukernel(gemm, indexed=True), prepare,
                         "\n".join(line for line in body if line.strip())]) + "\n"
