"""oneDNN's convolution as a baseline kernel: the library frameworks call on CPUs, driven from C.

`conv_source(shape, layout)` generates a C shim with the generated kernels'
signature, `void kernel(const float *A, const float *B, float *C)` (A: NCHW
input, B: KCRS weights, C: NKPQ output; no padding, any stride, as
adapters/kernels/codegen.py), so the kernel worker compiles, checks and times
it exactly like a tuned schedule, interleaved with it in one process.

The first call builds the oneDNN primitive (its JIT runs then) and converts
what needs converting; the worker's first call is its correctness run and is
never timed. Layouts:

* `nchw`: plain NCHW/OIHW tensors in and out, as a program holding NCHW
  arrays gets from oneDNN; every call writes C.
* `nhwc`, `any`: the activations in NHWC, or in the blocked layout oneDNN
  prefers (`format_tag_any`), as inside a framework whose layers pass
  tensors in that layout: the input is converted once and the weights once
  (a framework does both ahead of time), the output converted back to NCHW on
  the first call only (for the correctness check); timed calls run only the
  convolution.

Needs Debian's `libdnnl-dev` (oneDNN 2.x C API); `available()` says whether it is there.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from autosys_adapters.kernels.compile import DEFAULT_FLAGS
from autosys_adapters.kernels.shapes import conv_dims

LAYOUTS = ("nchw", "nhwc", "any")
#: link flags: --no-as-needed keeps libdnnl although the shim's object comes after it on the command line
FLAGS = (*DEFAULT_FLAGS, "-Wl,--no-as-needed", "-ldnnl")
HEADER = Path("/usr/include/oneapi/dnnl/dnnl.h")

_TAGS = {"nchw": ("dnnl_nchw", "dnnl_oihw", "dnnl_nchw"),
         "nhwc": ("dnnl_nhwc", "dnnl_format_tag_any", "dnnl_nhwc"),
         "any": ("dnnl_format_tag_any", "dnnl_format_tag_any", "dnnl_format_tag_any")}

_SHIM = r"""
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { fprintf(stderr, "oneDNN: %s failed (%d)\n", #x, (int)s_); abort(); } } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_primitive_t conv, to_user;
static dnnl_memory_t src, weights, dst, dst_user;
static int calls;

/* A memory in the layout the primitive wants: the user's own buffer when it already is, else a converted copy. */
static dnnl_memory_t in_layout(const dnnl_memory_desc_t *want, const dnnl_memory_desc_t *user_md, void *user) {
    dnnl_memory_t mem, user_mem;
    CHECK(dnnl_memory_create(&user_mem, user_md, engine, user));
    if (dnnl_memory_desc_equal(want, user_md)) return user_mem;
    CHECK(dnnl_memory_create(&mem, want, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd; dnnl_primitive_t reorder;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, user_md, engine, want, engine, NULL));
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user_mem}, {DNNL_ARG_TO, mem}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    return mem;
}

static void setup(const float *A, const float *B, float *C) {
    dnnl_dims_t sd = {CV_N, CV_C, CV_H, CV_W}, wd = {CV_K, CV_C, CV_R, CV_S}, dd = {CV_N, CV_K, CV_P, CV_Q};
    dnnl_dims_t strides = {CV_ST, CV_ST}, pad = {0, 0};
    dnnl_memory_desc_t src_user_md, w_user_md, dst_user_md, src_md, w_md, dst_md;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    CHECK(dnnl_memory_desc_init_by_tag(&src_user_md, 4, sd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&w_user_md, 4, wd, dnnl_f32, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_user_md, 4, dd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, SRC_TAG));
    CHECK(dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, W_TAG));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, DST_TAG));
    dnnl_convolution_desc_t cd;
    CHECK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_auto,
                                             &src_md, &w_md, NULL, &dst_md, strides, pad, pad));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &cd, NULL, engine, NULL));
    CHECK(dnnl_primitive_create(&conv, pd));
    src = in_layout(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &src_user_md, (void *)A);
    weights = in_layout(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &w_user_md, (void *)B);
    const dnnl_memory_desc_t *out_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    CHECK(dnnl_memory_create(&dst_user, &dst_user_md, engine, C));
    if (dnnl_memory_desc_equal(out_md, &dst_user_md)) {
        dst = dst_user;
    } else {
        CHECK(dnnl_memory_create(&dst, out_md, engine, DNNL_MEMORY_ALLOCATE));
        dnnl_primitive_desc_t rpd;
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, out_md, engine, &dst_user_md, engine, NULL));
        CHECK(dnnl_primitive_create(&to_user, rpd));
    }
}

void kernel(const float *A, const float *B, float *C) {
    if (!calls) setup(A, B, C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    CHECK(dnnl_primitive_execute(conv, stream, 3, args));
    if (to_user && calls == 0) {  /* the output back in NCHW for the correctness run only */
        dnnl_exec_arg_t back[2] = {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, dst_user}};
        CHECK(dnnl_primitive_execute(to_user, stream, 2, back));
    }
    CHECK(dnnl_stream_wait(stream));
    calls++;
}
"""


@functools.lru_cache(maxsize=1)
def available() -> str | None:
    """None when a oneDNN shim compiles and links here, else why not."""
    if not HEADER.exists():
        return "oneDNN is not installed (Debian: apt-get install libdnnl-dev)"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return "no C compiler"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(conv_source((1, 1, 3, 3, 1, 1, 1), "nchw"))
        run = subprocess.run([cc, *FLAGS, str(src), "-o", str(Path(tmp) / "probe.so")], capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            return f"a oneDNN shim does not build: {run.stderr.strip()[-300:]}"
    return None


def conv_source(shape: tuple[int, ...], layout: str = "nchw") -> str:
    """The C shim for an unpadded conv2d of `shape` (N,C,H,W,K,R,S[,stride]) in `layout` (see module doc)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    d = conv_dims(shape)
    if min(d) < 1 or d.r > d.h or d.s > d.w:
        raise ValueError(f"not a valid conv2d shape: {shape}")
    src_tag, w_tag, dst_tag = _TAGS[layout]
    defines = (f"#define CV_N {d.n}\n#define CV_C {d.c}\n#define CV_H {d.h}\n#define CV_W {d.w}\n#define CV_K {d.k}\n"
               f"#define CV_R {d.r}\n#define CV_S {d.s}\n#define CV_P {d.p}\n#define CV_Q {d.q}\n#define CV_ST {d.stride}\n"
               f"#define SRC_TAG {src_tag}\n#define W_TAG {w_tag}\n#define DST_TAG {dst_tag}\n")
    return f"/* oneDNN conv2d baseline, layout {layout} */\n" + defines + _SHIM
