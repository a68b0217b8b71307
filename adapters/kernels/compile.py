"""Compile generated C into a shared library, cached by a hash of source, flags and compiler.

The cache is a plain directory of `<sha256>.so` files. A library is written
under a temporary name and renamed into place, so concurrent compilations of
the same source never load a half-written file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-fopenmp", "-std=gnu11")


class CompileError(RuntimeError):
    """The compiler rejected the generated source (the message holds its diagnostics)."""


@dataclass(frozen=True)
class Compiled:
    path: Path
    cached: bool  # True when the library came from the cache, not a fresh compile
    seconds: float


def default_cache_dir() -> Path:
    env = os.environ.get("AUTOSYS_KERNEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autosys" / "kernels"


def compiler() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise CompileError(f"C compiler {cc!r} not found on PATH (set CC to another compiler)")
    return cc


@functools.lru_cache(maxsize=4)
def compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return cc


def source_key(source: str, flags: tuple[str, ...] = DEFAULT_FLAGS, cc: str | None = None) -> str:
    """The cache key: what the library's bytes depend on."""
    cc = cc or compiler()
    digest = hashlib.sha256()
    for part in (compiler_version(cc), " ".join(flags), source):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def compile_source(
    source: str,
    cache_dir: str | os.PathLike | None = None,
    flags: tuple[str, ...] = DEFAULT_FLAGS,
    timeout: float = 60.0,
) -> Compiled:
    """Return the path of a shared library built from `source`, compiling only on a cache miss."""
    import time

    cc = compiler()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = source_key(source, flags, cc)
    target = cache / f"{key}.so"
    if target.exists():
        return Compiled(target, cached=True, seconds=0.0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
        src = Path(tmp) / f"{key}.c"
        src.write_text(source)
        out = Path(tmp) / f"{key}.so"
        try:
            proc = subprocess.run(
                [cc, *flags, str(src), "-o", str(out), "-lm"], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise CompileError(f"{cc} took more than {timeout:g} s") from None
        if proc.returncode != 0:
            raise CompileError(f"{cc} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        (cache / f"{key}.c").write_text(source)  # kept next to the library for inspection
        os.replace(out, target)
    return Compiled(target, cached=False, seconds=time.perf_counter() - start)
