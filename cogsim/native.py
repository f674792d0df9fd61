"""Small C kernels compiled with the system compiler on first use, cached on disk, called by ctypes.

Memory systems use this for loops that torch cannot fuse on a CPU (per-step recurrences, sparse
bookkeeping). Each kernel is a ``.c`` file next to its Python wrapper, shipped as package data and
read with ``importlib.resources``; constants reach it as ``-D`` flags. No torch headers are involved,
so a build takes about a second. Without a compiler, or with the library's switch variable set to 0,
:meth:`NativeLibrary.get` returns ``None`` and the caller uses its pure-torch path; the reason is
kept for :meth:`NativeLibrary.status`.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.resources
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

#: Headers of the ``cogsim`` package every kernel may include (the shared thread pool).
SHARED_HEADERS = ("native_parallel.h",)

#: Exact IEEE arithmetic (no FMA contraction, no fast-math) so kernels can equal torch's results.
EXACT_CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC",
                "-shared", "-pthread"]


#: Every kernel library defined so far (the modules that wrap kernels create theirs at import).
LIBRARIES: list["NativeLibrary"] = []


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


def find_compiler() -> tuple[list[str] | None, str]:
    """The C compiler command (``$CC``, else gcc or cc on PATH), or ``None`` and why there is none."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        cmd = shlex.split(cc)
        path = shutil.which(cmd[0])
        return ([path, *cmd[1:]], "") if path else (None, f"no C compiler: CC={cc} is not found")
    path = shutil.which("gcc") or shutil.which("cc")
    return ([path], "") if path else (None, "no C compiler: neither gcc nor cc is on PATH")


_warned_no_compiler = False


def _warn_no_compiler(reason: str) -> None:
    """One line on stderr, once per process: the fast paths are off and the run is slower for it."""
    global _warned_no_compiler
    if not _warned_no_compiler:
        _warned_no_compiler = True
        print(f"cogsim: warning: {reason}; native kernels off, the torch paths run instead (same results, "
              "slower). Install gcc or set CC.", file=sys.stderr)


# ---- threads ----
_max_threads: int | None = None


@functools.lru_cache(maxsize=1)
def usable_cpus() -> int:
    """CPUs this process may run on (asked once: kernels ask per call, and the system call costs
    microseconds on a busy machine; ``usable_cpus.cache_clear()`` after changing the affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_max_threads(n: int | None) -> None:
    """Cap the threads of every kernel call in this process (``None``: back to the default).
    :func:`cogsim.threads.share_cores` sets it for processes that share the machine."""
    global _max_threads
    if n is not None and n < 1:
        raise ValueError(f"kernel threads must be at least 1, got {n}")
    _max_threads = n


@contextlib.contextmanager
def thread_limit(n: int | None):
    """Within the block every kernel call uses at most ``n`` threads (``None``: no change); the
    previous limit is restored after. For callers that parallelise over their own threads."""
    global _max_threads
    saved = _max_threads
    if n is not None:
        set_max_threads(n)
    try:
        yield
    finally:
        _max_threads = saved


def max_threads() -> int:
    """The most threads one kernel call may use: :func:`set_max_threads`, else ``COGSIM_NATIVE_THREADS``,
    else ``OMP_NUM_THREADS``, else the usable CPUs."""
    if _max_threads is not None:
        return _max_threads
    for var in ("COGSIM_NATIVE_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return usable_cpus()


def kernel_threads(work: int, work_per_thread: int) -> int:
    """Threads for one kernel call doing ``work`` units: one per ``work_per_thread`` units, at most
    :func:`max_threads`. Starting and joining a thread costs tens of microseconds and a second
    thread may wait for a busy core, so small calls run on the calling thread alone."""
    return max(1, min(max_threads(), work // max(1, work_per_thread)))


class NativeLibrary:
    """One C source (``source`` in ``package``, with its own ``headers`` there and the shared ones)
    built on first use with ``defines`` as ``-D`` flags. ``declare(lib)`` sets ctypes signatures
    after loading and may raise ``RuntimeError`` to reject the library (e.g. a stale ABI)."""

    def __init__(self, name: str, package: str, source: str, switch: str | tuple[str, ...],
                 declare: Callable[[ctypes.CDLL], None],
                 defines: dict[str, int] | None = None, headers: tuple[str, ...] = (),
                 cflags: list[str] | None = None) -> None:
        self.name, self.package, self.source, self.headers = name, package, source, tuple(headers)
        self.switches = (switch,) if isinstance(switch, str) else tuple(switch)
        self.declare = declare
        self.defines = dict(defines or {})
        self.cflags = list(cflags or EXACT_CFLAGS)
        self._lock = threading.Lock()
        self._state: dict[str, object] = {}
        LIBRARIES.append(self)

    def files(self) -> dict[str, str]:
        """The text of every file the build reads, by file name (the source first)."""
        res = importlib.resources.files(self.package)
        out = {name: res.joinpath(name).read_text() for name in (self.source, *self.headers)}
        shared = importlib.resources.files("cogsim")
        out.update({name: shared.joinpath(name).read_text() for name in SHARED_HEADERS})
        return out

    def flags(self) -> list[str]:
        """Compiler flags: ``cflags`` and the ``-D`` constants."""
        return [*self.cflags, *(f"-D{key}={value}" for key, value in self.defines.items())]

    def reset(self) -> None:
        """Forget the loaded library (the next :meth:`get` loads or builds it again)."""
        self._state = {}

    def compile(self, compiler: str | list[str], out: Path, extra_flags: tuple[str, ...] = ()) -> None:
        """Build the shared library ``out`` (``RuntimeError`` with the compiler's message on failure)."""
        cmd = [compiler] if isinstance(compiler, str) else list(compiler)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            for name, text in self.files().items():
                (Path(tmp) / name).write_text(text)
            built = Path(tmp) / f"{self.name}.so"
            proc = subprocess.run([*cmd, *self.flags(), *extra_flags, str(Path(tmp) / self.source), "-o",
                                   str(built), "-lm"], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-2000:]}")
            os.replace(built, out)  # atomic: concurrent builders agree on the result

    def cache_key(self, compiler_version: str) -> str:
        """Hash of everything the built library depends on: sources, headers, flags, compiler, CPU."""
        parts = [f"{name}\0{text}" for name, text in self.files().items()]
        key = hashlib.sha256("\0".join([*parts, " ".join(self.flags()), compiler_version, _cpu_id()]).encode())
        return key.hexdigest()[:16]

    def _build(self, compiler: list[str]) -> Path:
        version = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        target = cache_root() / f"{self.name}_{self.cache_key(version)}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.compile(compiler, target)
        return target

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, building it on first use; ``None`` when unavailable."""
        if "lib" in self._state:
            return self._state["lib"]  # type: ignore[return-value]
        with self._lock:
            if "lib" in self._state:
                return self._state["lib"]  # type: ignore[return-value]
            lib = None
            compiler, reason = find_compiler()
            if self._disabled():
                reason = self._disabled()
            elif compiler is None:
                _warn_no_compiler(reason)
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

    def _disabled(self) -> str:
        """Why a switch variable turns this library off, or ``""``."""
        return next((f"disabled by {v}=0" for v in self.switches if os.environ.get(v, "1") == "0"), "")

    def state(self) -> str:
        """``on`` (loaded), ``off (why)``, or ``ready`` (not loaded yet, a compiler is there); builds nothing."""
        if "lib" in self._state:
            return "on" if self._state["lib"] is not None else f"off ({self._state['reason']})"
        if self._disabled():
            return f"off ({self._disabled()})"
        compiler, reason = find_compiler()
        return f"off ({reason})" if compiler is None else "ready"

    def built_files(self) -> list[Path]:
        return sorted(cache_root().glob(f"{self.name}_*.so"))


def kernel_states() -> dict[str, str]:
    """Every kernel library's :meth:`NativeLibrary.state`, by name (for run summaries and ``check``)."""
    return {lib.name: lib.state() for lib in LIBRARIES}


def describe() -> str:
    """One line on the native kernels of this process: the compiler and each library's state, or why
    they are all off."""
    compiler, reason = find_compiler()
    if compiler is None:
        return f"native kernels: off ({reason}); the torch paths run instead (same results, slower)"
    states = ", ".join(f"{name} {state}" for name, state in kernel_states().items()) or "none used"
    return f"native kernels ({Path(compiler[0]).name}): {states}"
