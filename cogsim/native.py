"""Small C kernels compiled with the system compiler on first use, cached on disk, called by ctypes.

Memory systems use this for loops that torch cannot fuse on a CPU (per-step recurrences, sparse
bookkeeping). No torch headers are involved, so a build takes about a second. Without a compiler,
or with the library's switch variable set to 0, :meth:`NativeLibrary.get` returns ``None`` and the
caller uses its pure-torch path; the reason is kept for :meth:`NativeLibrary.status`.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

#: Split [0, M) into ranges and run a function on each from a few pthreads (include in a source).
PARALLEL_C = r"""
#include <stdint.h>
#include <pthread.h>
typedef void (*range_fn)(const void *args, int64_t i0, int64_t i1);
typedef struct { range_fn fn; const void *args; int64_t i0, i1; } job_t;
static void *job_main(void *p) { job_t *j = (job_t *)p; j->fn(j->args, j->i0, j->i1); return NULL; }
/* ranges are multiples of `align` items; nthreads is clamped to [1, 64] */
static void run_parallel_aligned(range_fn fn, const void *args, int64_t M, int nthreads, int64_t align) {
  if (nthreads > 64) nthreads = 64;
  if (nthreads < 1) nthreads = 1;
  int64_t per = (M + nthreads - 1) / nthreads;
  if (align > 1) per = (per + align - 1) / align * align;
  if (nthreads == 1 || per >= M) { fn(args, 0, M); return; }
  pthread_t th[64]; job_t jobs[64]; int started[64]; int n = 0;
  for (int64_t i0 = per; i0 < M && n < 63; i0 += per, ++n) {
    jobs[n].fn = fn; jobs[n].args = args; jobs[n].i0 = i0; jobs[n].i1 = i0 + per < M ? i0 + per : M;
    started[n] = pthread_create(&th[n], NULL, job_main, &jobs[n]) == 0;
    if (!started[n]) job_main(&jobs[n]);
  }
  fn(args, 0, per);
  for (int k = 0; k < n; ++k) if (started[k]) pthread_join(th[k], NULL);
}
"""

#: Exact IEEE arithmetic (no FMA contraction, no fast-math) so kernels can equal torch's results.
EXACT_CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC",
                "-shared", "-pthread"]


def cache_root() -> Path:
    """Where compiled libraries are kept (``COGSIM_CACHE`` or ~/.cache/cogsim, subfolder native)."""
    root = os.environ.get("COGSIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cogsim")
    return Path(root) / "native"


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


class NativeLibrary:
    """One C source built on first use. ``declare(lib)`` sets ctypes signatures after loading and may
    raise ``RuntimeError`` to reject the library (e.g. a stale ABI)."""

    def __init__(self, name: str, source: str, switch: str, declare: Callable[[ctypes.CDLL], None],
                 cflags: list[str] | None = None) -> None:
        self.name, self.source, self.switch, self.declare = name, source, switch, declare
        self.cflags = list(cflags or EXACT_CFLAGS)
        self._lock = threading.Lock()
        self._state: dict[str, object] = {}

    def reset(self) -> None:
        """Forget the loaded library (the next :meth:`get` loads or builds it again)."""
        self._state = {}

    def _build(self, compiler: str) -> Path:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256("\0".join([self.source, " ".join(self.cflags), version, _cpu_id()]).encode())
        target = cache_root() / f"{self.name}_{key.hexdigest()[:16]}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src, out = Path(tmp) / f"{self.name}.c", Path(tmp) / f"{self.name}.so"
            src.write_text(self.source)
            proc = subprocess.run([compiler, *self.cflags, str(src), "-o", str(out), "-lm"], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {proc.stderr.strip()[-2000:]}")
            os.replace(out, target)  # atomic: concurrent builders agree on the result
        return target

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, building it on first use; ``None`` when unavailable."""
        if "lib" in self._state:
            return self._state["lib"]  # type: ignore[return-value]
        with self._lock:
            if "lib" in self._state:
                return self._state["lib"]  # type: ignore[return-value]
            lib, reason = None, ""
            compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
            if os.environ.get(self.switch, "1") == "0":
                reason = f"disabled by {self.switch}=0"
            elif not compiler:
                reason = "no C compiler (gcc/cc) found"
            else:
                try:
                    lib = ctypes.CDLL(str(self._build(compiler)))
                    self.declare(lib)
                except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as e:
                    lib, reason = None, f"native {self.name} kernels unavailable ({e}); using the torch path"
                    warnings.warn(reason, RuntimeWarning, stacklevel=3)
            self._state["lib"], self._state["reason"] = lib, reason
            return lib

    def status(self) -> str:
        """One line: whether the native kernels are in use, and why not."""
        return "native kernels: available" if self.get() is not None else \
            f"native kernels: off ({self._state['reason']})"

    def built_files(self) -> list[Path]:
        return sorted(cache_root().glob(f"{self.name}_*.so"))
