"""Generated tensor kernels: C code from a schedule, compiled, checked and timed in a child process.

Modules: `codegen` (C source for matmul / conv2d / naive baselines), `compile`
(gcc with a content-hash cache), `worker` + `runner` (measure in a child
process with a deadline), `features` + `cost_model` (learned schedule cost
model), `triton_backend` (GPU, optional).
"""
