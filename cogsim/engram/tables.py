"""Engram table storage per placement: ``device`` tensor, ``host`` (pinned) RAM, ``mmap`` file, or
``sharded`` across data-parallel ranks (:mod:`cogsim.engram.sharded`).

One :class:`EngramTable` holds one layer's rows (all heads) and their row-wise optimizer state in the
same placement, initialised by a counter-based hash so every placement starts equal and an mmap file
needs no initialisation pass. Checkpoints and the mmap undo journal: docs/design.md §5.1. Under data
parallel a ``device`` or ``host`` table is replicated on every rank and takes every rank's row
gradients (:meth:`EngramTable.apply_gradients`); ``mmap`` serves one process.
"""
from __future__ import annotations

import json
import mmap as _mmap
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cogsim.engram import exchange, native_gather
from cogsim.engram.sparse_optim import COUNT, STATE_SLOTS, RowwiseOptimizer
from cogsim.errors import CogsimError

PLACEMENTS = ("device", "host", "mmap", "sharded")


class TableSizeError(CogsimError, ValueError):
    """A table that cannot fit where it should live. Also a ValueError, so a model building its
    nodes reports it located at the node's file and line."""
_INIT_CHUNK_ELEMS = 1 << 22


# ---- deterministic row initialisation ---------------------------------------------------------
_U = np.uint64


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 output function on uint64 arrays (wrapping arithmetic, in place on a copy)."""
    with np.errstate(over="ignore"):
        x = x + _U(0x9E3779B97F4A7C15)
        x ^= x >> _U(30)
        x *= _U(0xBF58476D1CE4E5B9)
        x ^= x >> _U(27)
        x *= _U(0x94D049BB133111EB)
        x ^= x >> _U(31)
    return x


def init_rows(seed: int, idx: torch.Tensor, dim: int, std: float = 1.0) -> torch.Tensor:
    """Initial values of rows ``idx``: [len(idx), dim] float32 N(0, std²) on ``idx``'s device.

    Depends only on (seed, row, column): one SplitMix64 hash per pair of columns gives two 24-bit
    uniforms, Box–Muller turns them into two normals. Computed with NumPy (much faster than torch's
    int64 kernels on a CPU)."""
    half = (dim + 1) // 2
    rows = idx.detach().cpu().numpy().astype(np.uint64)
    key = _splitmix(np.array([seed & (2**64 - 1)], dtype=np.uint64))
    with np.errstate(over="ignore"):
        h = _splitmix((rows[:, None] * _U(half) + np.arange(half, dtype=np.uint64)) ^ key)
    u1 = ((h >> _U(40)).astype(np.float32) + 1) * np.float32(2.0**-24)  # (0, 1]
    angle = ((h >> _U(8)) & _U(0xFFFFFF)).astype(np.float32) * np.float32(2.0**-24 * 2 * np.pi)
    radius = np.sqrt(np.float32(-2.0) * np.log(u1))
    z = np.empty((len(rows), half, 2), dtype=np.float32)
    np.multiply(radius, np.cos(angle), out=z[..., 0])
    np.multiply(radius, np.sin(angle), out=z[..., 1])
    z = z.reshape(len(rows), 2 * half)[:, :dim]
    if std != 1.0:
        z *= np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(z)).to(idx.device)


# ---- host memory ----------------------------------------------------------------------------
_HUGE_PAGE = 2 << 20


def host_empty(shape: tuple[int, int], pin: bool = False) -> torch.Tensor:
    """An uninitialised float32 host tensor. Pinned when asked (CUDA copies); otherwise large ones
    are backed by transparent huge pages where the kernel offers them: random row gathers from a big
    table miss the TLB on almost every row with 4 KiB pages."""
    nbytes = shape[0] * shape[1] * 4
    if pin or nbytes < 4 * _HUGE_PAGE or not hasattr(_mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=torch.float32, pin_memory=pin)
    region = _mmap.mmap(-1, nbytes, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS)
    try:
        region.madvise(_mmap.MADV_HUGEPAGE)
    except OSError:
        pass
    return torch.frombuffer(region, dtype=torch.float32, count=shape[0] * shape[1]).view(shape)


def gather_rows(weight: torch.Tensor, idx: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``weight[idx]`` into ``out``. On the CPU the native prefetching gather
    (:mod:`cogsim.engram.native_gather`) copies the rows; without it rows are copied as 16-byte
    elements where the layout allows (fewer, wider element copies than float by float)."""
    if out is None:
        out = torch.empty(len(idx), weight.shape[1], dtype=weight.dtype, device=weight.device)
    if not torch.is_grad_enabled() or not weight.requires_grad:
        if native_gather.gather(weight, idx, out):  # prefetching C gather where it applies
            return out
    wide = (weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.shape[1] % 4 == 0
            and weight.is_contiguous() and out.is_contiguous() and weight.data_ptr() % 16 == 0
            and out.data_ptr() % 16 == 0)
    if wide:
        torch.index_select(weight.view(torch.complex128), 0, idx, out=out.view(torch.complex128))
    else:
        torch.index_select(weight, 0, idx, out=out)
    return out


# ---- free memory / disk ---------------------------------------------------------------------
def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def mem_available() -> int:
    """Free RAM in bytes (MemAvailable of /proc/meminfo; falls back to physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(nbytes: int, placement: str, what: str, *, device: torch.device | None = None,
               path: Path | None = None, reusable: int = 0) -> None:
    """Refuse (CogsimError, one line) a table of ``nbytes`` that cannot fit where it will live.
    ``reusable``: bytes already held by an existing file at ``path`` that will be reused."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        where, limit, hint = f"free GPU memory on {device}", free, "use placement: host or mmap"
    elif placement == "mmap":
        folder = Path(path).absolute().parent
        while not folder.exists():  # the folder may not be created yet
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        where, limit, hint = f"free disk at {folder}", free + reusable, "choose mmap_path on a larger disk"
    else:
        where, limit, hint = "free RAM", mem_available(), "use placement: mmap"
    if nbytes > limit:
        raise TableSizeError(f"{what}: {placement} table needs {format_bytes(nbytes)} but only "
                          f"{format_bytes(limit)} of {where} is available; lower engram_vocab_size or "
                          f"n_embed_per_ngram, or {hint}")


# ---- the table --------------------------------------------------------------------------------
class EngramTable(nn.Module):
    """Rows [rows, dim] float32 + row-wise optimizer state [rows, 2] in one placement.

    ``what`` names the owner in error messages (e.g. ``"engram_vocab_size"`` or a node name).
    For ``mmap`` the file is opened lazily (first read, update or :meth:`load_sparse_state_dict`), so a
    checkpoint can point the table at an existing file before anything is overwritten. ``path``:
    the table file (None: a file in the storage directory set by :meth:`set_storage_dir`, else a
    temporary file deleted with the table); relative paths are taken inside the storage directory.
    """

    def __init__(self, rows: int, dim: int, placement: str = "device", *, seed: int = 0, std: float = 1.0,
                 path: str | None = None, what: str = "engram") -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
        self.rows, self.dim, self.placement = int(rows), int(dim), placement
        self.seed, self.std, self.what = int(seed), float(std), what
        self._path_arg = path
        self._storage_dir: Path | None = None
        self._lock = threading.RLock()
        self._weight: torch.Tensor | None = None  # host / mmap rows
        self._state: torch.Tensor | None = None  # host / mmap optimizer state
        self._maps: list[np.memmap] = []
        self._temp_cleanup: weakref.finalize | None = None
        self._generation = 0  # mmap: updates applied since the file was created
        self._journal = None  # mmap: open undo journal file, or None when clean
        self._journaled: torch.Tensor | None = None  # rows already in the journal (sorted)
        self._closed = False
        self._exchange: exchange.RowExchange | None = None  # the ranks sharing this table, if any
        if exchange.active() and placement in ("device", "host"):
            self._exchange = exchange.RowExchange(host_rows=placement == "host")
        if placement == "device":
            check_fits(self.nbytes, placement, what)
            self.register_buffer("weight", self._initial_rows(), persistent=True)
            self.register_buffer("opt_state", host_empty((self.rows, STATE_SLOTS)).zero_(), persistent=False)
        elif placement == "host":
            self._allocate_host()
        elif placement == "mmap":  # checked again when the file is created (the storage directory may change)
            if exchange.active():
                raise ValueError("placement: mmap serves one process; under torchrun use placement: sharded "
                                 "(rows split across ranks) or host (one copy per rank)")
            check_fits(self.nbytes, placement, what, path=self.path or Path(tempfile.gettempdir()) / "x")

    # ---- sizes and places ----
    @property
    def table_bytes(self) -> int:
        return self.rows * self.dim * 4

    @property
    def nbytes(self) -> int:
        """Table plus optimizer state, in bytes."""
        return self.table_bytes + self.rows * STATE_SLOTS * 4

    @property
    def device(self) -> torch.device:
        """Where the rows live (and where gathers and updates run)."""
        return self.weight.device if self.placement == "device" else torch.device("cpu")

    @property
    def path(self) -> Path | None:
        """The mmap file (resolved against the storage directory), None for other placements."""
        if self.placement != "mmap":
            return None
        if self._maps:
            return Path(self._maps[0].filename)
        if self._path_arg is None:
            return None if self._storage_dir is None else self._storage_dir / "engram_table.f32"
        p = Path(self._path_arg).expanduser()
        return p if p.is_absolute() or self._storage_dir is None else self._storage_dir / p

    def set_storage_dir(self, directory: str | os.PathLike) -> None:
        """Directory for a default or relative mmap path (the run folder). If the table already lives
        in a temporary file, it is moved there."""
        self._storage_dir = Path(directory)
        if self.placement != "mmap" or not self._maps or self._temp_cleanup is None:
            return
        with self._lock:
            old = Path(self._maps[0].filename)
            self.flush()
            self._close_maps()
            self._temp_cleanup.detach()
            self._temp_cleanup = None
            new = self.path
            new.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", ".json"):
                shutil.move(f"{old}{suffix}", f"{new}{suffix}")
            self._open_files(new, create=False)

    def _allocate_host(self) -> None:
        """Rows and state of a ``host`` table in this process's RAM (pinned when CUDA may copy them)."""
        check_fits(self.nbytes, "host", self.what)
        pin = torch.cuda.is_available()
        self._weight = self._initial_rows(pin)
        self._state = host_empty((self.rows, STATE_SLOTS), pin).zero_()

    def memory_estimate(self) -> dict[str, int]:
        key = {"device": "device_tables", "host": "host_tables", "mmap": "disk_tables"}[self.placement]
        return {key: self.nbytes}

    def _initial_rows(self, pin: bool = False, first: int = 0, stop: int | None = None) -> torch.Tensor:
        """Initial values of rows [first, stop) (default: every row)."""
        stop = self.rows if stop is None else stop
        out = host_empty((stop - first, self.dim), pin)
        step = max(1, _INIT_CHUNK_ELEMS // self.dim)
        for start in range(first, stop, step):
            idx = torch.arange(start, min(start + step, stop))
            out[start - first : start - first + len(idx)] = init_rows(self.seed, idx, self.dim, self.std)
        return out

    # ---- mmap files ----
    def _meta(self) -> dict:
        return {"format": "cogsim-engram-table", "version": 2, "layout": "row values then state, per row",
                "rows": self.rows, "dim": self.dim,
                "state_slots": STATE_SLOTS, "seed": self.seed, "std": self.std}

    def _write_meta(self, dirty: bool) -> None:
        path = Path(f"{self._maps[0].filename}.json")
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self._meta(), "generation": self._generation, "dirty": dirty}))
        os.replace(tmp, path)

    def _open_files(self, path: Path, create: bool) -> None:
        """One record per row: its ``dim`` values then its optimizer state, so touching a row
        touches one page of the file, not two."""
        records = np.memmap(path, dtype=np.float32, mode="w+" if create else "r+",
                            shape=(self.rows, self.dim + STATE_SLOTS))
        try:  # rows are read at random: page read-ahead only wastes I/O
            records._mmap.madvise(_mmap.MADV_RANDOM)
        except (AttributeError, OSError, ValueError):
            pass
        self._maps = [records]
        both = torch.from_numpy(records)
        self._weight, self._state = both[:, : self.dim], both[:, self.dim:]

    def _close_maps(self) -> None:
        self._weight = self._state = None
        self._maps = []

    def _ensure_open(self) -> None:
        if self.placement != "mmap" or self._maps:
            return
        with self._lock:
            if self._maps:
                return
            if self._closed:
                raise RuntimeError(f"{self.what}: the mmap table was closed")
            path = self.path
            if path is None:
                fd, name = tempfile.mkstemp(prefix="cogsim_engram_", suffix=".f32")
                os.close(fd)
                path = Path(name)
                self._temp_cleanup = weakref.finalize(self, _remove_files, str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            reusable = _allocated(path)
            check_fits(self.nbytes, "mmap", self.what, path=path, reusable=reusable)
            self._generation = 0
            self._open_files(path, create=True)  # a fresh (sparse) file: every row uninitialised
            self._write_meta(dirty=False)

    def close(self) -> None:
        """Write an mmap table's pages to its file and unmap it (a temporary file is deleted). The
        undo journal is kept: the latest checkpoint stays restorable."""
        if self.placement == "mmap" and self._maps:
            with self._lock:
                for m in self._maps:
                    m.flush()
                self._abandon_journal()
                self._close_maps()
                self._closed = True
                if self._temp_cleanup is not None:
                    self._temp_cleanup()

    # ---- rows ----
    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.placement == "device":
            return self.weight, self.opt_state
        self._ensure_open()
        return self._weight, self._state

    @property
    def shared(self) -> bool:
        """Whether several ranks share this table (every rank then takes part in each update)."""
        return self._exchange is not None

    @property
    def collective(self) -> bool:
        """Whether :meth:`read` is a collective call (every rank must make it, in the same order)."""
        return False

    def read(self, idx: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``idx`` (long, on :attr:`device`) as [len(idx), dim]; ``out`` may be a staging buffer."""
        return self._read_local(idx, out)

    def _read_local(self, idx: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        with self._lock:
            weight, state = self._tensors()
            out = gather_rows(weight, idx, out)
            if self.placement == "mmap":  # rows never written still hold the file's zeros
                fresh = state.index_select(0, idx)[:, COUNT] == 0
                if bool(fresh.any()):
                    out[fresh] = init_rows(self.seed, idx[fresh], self.dim, self.std)
            return out

    @torch.no_grad()
    def update(self, idx: torch.Tensor, grad: torch.Tensor, optimizer: RowwiseOptimizer, lr: float) -> None:
        """Apply ``optimizer`` to the unique rows ``idx`` with their summed gradients ``grad``."""
        with self._lock:
            weight, state = self._tensors()
            rows = self._read_local(idx)
            old_state = state.index_select(0, idx)
            if self.placement == "mmap":
                self._journal_rows(idx, rows, old_state)
            new_rows, new_state = optimizer.update(rows, old_state, grad.to(rows.device), lr)
            weight.index_copy_(0, idx, new_rows)
            state.index_copy_(0, idx, new_state)
            self._generation += 1

    def apply_gradients(self, idx: torch.Tensor, grad: torch.Tensor, optimizer: RowwiseOptimizer,
                        lr: float) -> torch.Tensor | None:
        """One training step's update from this process's row gradients (sorted unique ``idx``).
        Several ranks: every rank calls it; the gradients of all ranks are averaged (as
        DistributedDataParallel averages dense ones) and every copy applies the same update.
        Returns the rows that changed (None: any row may have)."""
        if self._exchange is not None:
            ex = self._exchange
            idx, grad = exchange.sum_rows(ex.all_gather(idx), ex.all_gather(grad / ex.size))
        self.update(idx, grad, optimizer, lr)
        return idx

    def gather_rows_to_main(self) -> None:
        """Training is over and rank 0 goes on alone (probes, figures): no more exchanges."""
        self._exchange = None

    def rows_written(self) -> int:
        """How many rows have received at least one update."""
        with self._lock:
            return int((self._tensors()[1][:, COUNT] > 0).sum())

    # ---- mmap undo journal ----
    def _journal_rows(self, idx: torch.Tensor, rows: torch.Tensor, state: torch.Tensor) -> None:
        """Before rows change for the first time since the last flush, append their old values."""
        if self._journal is None:
            self._journal = open(f"{self._maps[0].filename}.undo", "wb")
            self._journaled = idx.new_empty(0)
            self._write_meta(dirty=True)
        new = ~torch.isin(idx, self._journaled)
        if not bool(new.any()):
            return
        n = int(new.sum())
        self._journal.write(np.asarray([n], dtype=np.int64).tobytes())
        for t in (idx[new], rows[new], state[new]):
            self._journal.write(t.contiguous().numpy().tobytes())
        self._journal.flush()  # in the OS before the table pages change: survives a killed process
        self._journaled = torch.sort(torch.cat([self._journaled, idx[new]])).values

    def _replay_journal(self, path: Path) -> None:
        data = Path(f"{path}.undo").read_bytes() if Path(f"{path}.undo").exists() else b""
        pos, d = 0, self.dim
        weight, state = self._weight, self._state
        while pos < len(data):
            n = int(np.frombuffer(data, np.int64, 1, pos)[0]); pos += 8
            need = n * 8 + n * d * 4 + n * STATE_SLOTS * 4
            if pos + need > len(data):  # a record cut short: its rows were never modified
                break
            idx = torch.from_numpy(np.frombuffer(data, np.int64, n, pos).copy()); pos += n * 8
            rows = torch.from_numpy(np.frombuffer(data, np.float32, n * d, pos).copy()).view(n, d); pos += n * d * 4
            st = torch.from_numpy(np.frombuffer(data, np.float32, n * STATE_SLOTS, pos).copy()).view(n, STATE_SLOTS)
            pos += n * STATE_SLOTS * 4
            weight.index_copy_(0, idx, rows)
            state.index_copy_(0, idx, st)

    def flush(self) -> None:
        """mmap: write dirty pages to the file and start a new undo journal. No-op otherwise."""
        if self.placement != "mmap" or not self._maps:
            return
        with self._lock:
            for m in self._maps:
                m.flush()
            self._write_meta(dirty=False)
            if self._journal is not None:
                self._journal.close()
                self._journal = None
                self._journaled = None
                os.remove(f"{self._maps[0].filename}.undo")

    # ---- checkpoints ----
    def sparse_state_dict(self) -> dict[str, torch.Tensor]:
        if self.placement == "device":
            return {"opt_state": self.opt_state.detach().clone()}
        if self.placement == "host":
            return {"weight": self._weight.clone(), "opt_state": self._state.clone()}
        self._ensure_open()
        self.flush()
        path = str(self.path.resolve()).encode()
        return {"mmap_path": torch.tensor(list(path), dtype=torch.uint8),
                "generation": torch.tensor([self._generation], dtype=torch.int64),
                "shape": torch.tensor([self.rows, self.dim], dtype=torch.int64)}

    def load_sparse_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.placement == "mmap":
            return self._load_mmap_reference(state)
        keys = {"opt_state"} | ({"weight"} if self.placement == "host" else set())
        if not keys <= set(state):
            raise CogsimError(f"{self.what}: checkpoint lacks {sorted(keys - set(state))} for a "
                              f"{self.placement} table (was it saved with another placement?)")
        with self._lock:
            weight, opt_state = self._tensors()
            for name, dst in (("weight", weight), ("opt_state", opt_state)):
                if name in keys:
                    if tuple(state[name].shape) != tuple(dst.shape):
                        raise CogsimError(f"{self.what}: checkpoint {name} has shape {tuple(state[name].shape)}, "
                                          f"this table {tuple(dst.shape)}")
                    dst.copy_(state[name])

    def _load_mmap_reference(self, state: dict[str, torch.Tensor]) -> None:
        if "mmap_path" not in state:
            raise CogsimError(f"{self.what}: checkpoint has no mmap table reference (saved with another placement?)")
        path = Path(bytes(state["mmap_path"].tolist()).decode())
        generation = int(state["generation"][0])
        shape = tuple(int(v) for v in state["shape"])
        if not Path(f"{path}.json").exists() and self.path is not None and Path(f"{self.path}.json").exists():
            path = self.path  # the run folder moved: use the file of the same table here
        meta_path = Path(f"{path}.json")
        if not meta_path.exists():
            raise CogsimError(f"{self.what}: mmap table file {path} referenced by the checkpoint does not exist")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "cogsim-engram-table" or meta.get("version") != 2:
            raise CogsimError(f"{self.what}: {path} is not an mmap table file this version of cogsim reads")
        if shape != (self.rows, self.dim) or (meta["rows"], meta["dim"], meta["seed"]) != (self.rows, self.dim, self.seed):
            raise CogsimError(f"{self.what}: mmap table {path} holds {meta['rows']}×{meta['dim']} rows with seed "
                              f"{meta['seed']}, this layer needs {self.rows}×{self.dim} with seed {self.seed}")
        with self._lock:
            if self._maps:
                if Path(self._maps[0].filename).resolve() != path.resolve():
                    self.close()
                else:
                    self._abandon_journal()
                    self._close_maps()
            self._closed = False
            self._open_files(path, create=False)
            if meta["dirty"] and meta["generation"] == generation:
                self._replay_journal(path)
                meta["dirty"] = False
            if meta["dirty"] or meta["generation"] != generation:
                self._close_maps()
                raise CogsimError(f"{self.what}: mmap table {path} is at update {meta['generation']}"
                                  f"{' (with unjournaled changes)' if meta['dirty'] else ''} but the checkpoint "
                                  f"expects update {generation}; only the latest checkpoint of an mmap table can be restored")
            self._generation = generation
            self._write_meta(dirty=False)
            for m in self._maps:
                m.flush()
            Path(f"{path}.undo").unlink(missing_ok=True)

    def _abandon_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal, self._journaled = None, None

    # ---- module plumbing ----
    def _apply(self, fn, recurse=True):
        """Device tables follow ``.to()`` (after a free-memory check) but stay float32; host and mmap
        tables do not move."""
        if self.placement == "device":
            try:
                target = fn(torch.zeros(0)).device
            except Exception:  # noqa: BLE001 - an exotic fn: let nn.Module do what it does
                target = None
            if target is not None and target != self.weight.device:
                check_fits(self.nbytes, "device", self.what, device=target)
        super()._apply(fn, recurse)
        if self.placement == "device":
            self.weight = self.weight.float()
            self.opt_state = self.opt_state.float()
        return self

    def __getstate__(self):
        """Device and host tables copy like any module (deepcopy); an open mmap file cannot be shared.
        A copy does not take part in the ranks' exchanges."""
        if self.placement == "mmap" and self._maps:
            raise TypeError(f"{self.what}: an open mmap table cannot be copied or pickled; "
                            "use sparse_state_dict() to reference it")
        state = dict(self.__dict__)
        state.update(_lock=None, _temp_cleanup=None, _journal=None, _journaled=None, _exchange=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def extra_repr(self) -> str:
        where = f", path={self.path}" if self.placement == "mmap" else ""
        return f"rows={self.rows}, dim={self.dim}, placement={self.placement}{where}"


def _allocated(path: Path) -> int:
    """Bytes a file already occupies on disk (0 when absent); sparse files count their blocks."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def _remove_files(path: str) -> None:
    for suffix in ("", ".json", ".undo", ".json.tmp"):
        try:
            os.remove(f"{path}{suffix}")
        except OSError:
            pass
