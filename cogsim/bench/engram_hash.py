"""Hashing part of ``cogsim bench engram``: cogsim's n-gram hash (the native kernel where it builds,
and the torch fallback) against the loop-by-loop NumPy statement of the reference
(``cogsim.engram.reference``), timed interleaved in the same run, with a bit-exact check of every
output and the load average at measurement time. Run alone: ``python -m cogsim.bench.engram_hash``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from cogsim.bench.common import add_csv_argument, append_csv, load_average, time_pair
from cogsim.engram import native_hash
from cogsim.engram.hashing import NgramHashMapping
from cogsim.engram.reference import ReferenceHash
from cogsim.threads import sharing_cores

#: The demo's configuration: DeepSeek-V3's 129,280 ids compressed by ~23%, 3-grams, 8 heads per order,
#: tables of 5×129,280 rows per head, Engram at layers 1 and 15.
DEMO = dict(engram_vocab_size=[129280 * 5, 129280 * 5], max_ngram_size=3, n_embed_per_ngram=512,
            n_head_per_ngram=8, layer_ids=[1, 15], pad_id=2, seed=0)
DEMO_COMPRESSED_VOCAB = 99_548


def _cpu_time_pair(fn_a, fn_b, repeat: int) -> tuple[float, float]:
    """Median thread CPU seconds of two single-threaded callables, interleaved. On a shared machine
    this is steadier than wall-clock time: time spent waiting for a core is not counted."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            t0 = time.thread_time()
            fn()
            out.append(time.thread_time() - t0)
    return statistics.median(ta), statistics.median(tb)


def _one(mapping: NgramHashMapping, ref: ReferenceHash, ids: np.ndarray, repeat: int, threads: int,
         backend: str) -> dict:
    """One row: ``mapping.hash(ids, backend=backend)`` vs the reference at ``threads`` torch and
    kernel threads. ``backend="auto"`` is what models use and carries the goal; the torch fallback
    is reported for information."""
    with sharing_cores(1, threads):
        ids_t = torch.from_numpy(ids)
        run = lambda: mapping.hash(ids_t, backend=backend)  # noqa: E731
        fast_out, ref_out = run(), ref.hash(ids)
        exact = all(np.array_equal(fast_out[layer].numpy(), ref_out[layer]) for layer in mapping.layer_ids)
        load = load_average()
        fast_s, ref_s = time_pair(run, lambda: ref.hash(ids), repeat=repeat)
        cpu = _cpu_time_pair(run, lambda: ref.hash(ids), repeat) if threads == 1 else None
    batch, length = ids.shape
    ratio = ref_s / fast_s
    name = ("native" if native_hash.library() is not None else "torch") if backend == "auto" else backend
    main = backend == "auto"
    return {"what": f"{name} hash B={batch} T={length}", "ms": round(fast_s * 1e3, 4),
            "baseline": "NumPy reference loop", "baseline_ms": round(ref_s * 1e3, 4), "ratio": round(ratio, 3),
            "goal": ">= 2" if main else "fallback (info)", "ok": bool(exact and (ratio >= 2 or not main)),
            "threads": threads,
            "config": (f"N={mapping.max_ngram_size} heads={mapping.n_head_per_ngram} layers={mapping.layer_ids} "
                       f"vocab={mapping.compressed_vocab_size} tables={mapping.vocab_size_per_ngram}"),
            "note": (f"{'bit-exact' if exact else 'MISMATCH with the reference'}; "
                     f"{fast_s * 1e9 / (ids.size * mapping.n_heads_per_layer * len(mapping.layer_ids)):.2f} ns per row index"
                     + (f"; CPU-time ratio {cpu[1] / cpu[0]:.2f} ({cpu[0] * 1e3:.3f} vs {cpu[1] * 1e3:.3f} ms)" if cpu else "")
                     + f"; {load}")}


def bench_hashing(batch: int = 16, seq_len: int = 128, repeat: int = 15, vocab_size: int | None = None,
                  big_batch: tuple[int, int] = (64, 1024), backends: tuple[str, ...] = ("auto", "torch")) -> list[dict]:
    """Rows (dicts) comparing the hash with the NumPy reference on the demo configuration: at
    ``batch`` x ``seq_len`` and at ``big_batch``, with torch's thread count and with one thread (the
    reference is single-threaded), for each backend. ``ok`` needs a bit-exact match and, for the
    ``auto`` backend (native where it builds), a ratio >= 2."""
    vocab = vocab_size or DEMO_COMPRESSED_VOCAB
    mapping = NgramHashMapping(**DEMO, compressed_vocab_size=vocab)
    ref = ReferenceHash(DEMO["engram_vocab_size"], DEMO["max_ngram_size"], DEMO["n_head_per_ngram"],
                        DEMO["layer_ids"], DEMO["pad_id"], DEMO["seed"], vocab)
    rng = np.random.default_rng(0)
    rows = []
    for shape in dict.fromkeys([(batch, seq_len), tuple(big_batch)]):
        ids = rng.integers(0, vocab, size=shape)
        ids[:, :4] = vocab - 1  # the top of the vocabulary, where the products wrap around int64
        for backend in backends:
            for threads in dict.fromkeys([torch.get_num_threads(), 1]):
                rows.append(_one(mapping, ref, ids, repeat if shape == (batch, seq_len) else max(3, repeat // 3),
                                 threads, backend))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cogsim.bench.engram_hash", description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--big-batch", type=int, nargs=2, default=(64, 1024), metavar=("B", "T"))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--backends", nargs="+", default=["auto", "torch"], choices=["auto", "native", "torch"],
                        help="hash backends to time (auto = native where it builds, as models use it)")
    add_csv_argument(parser, "engram.csv")
    args = parser.parse_args(argv)
    rows = [{"target": "engram", "part": "hashing", **r}
            for r in bench_hashing(args.batch, args.seq_len, args.repeat, big_batch=tuple(args.big_batch),
                                   backends=tuple(args.backends))]
    print(f"  {native_hash.status()}")
    for r in rows:
        print(f"  {r['what']:29s} threads={r['threads']}  {r['ms']:9.3f} ms  vs reference {r['baseline_ms']:9.3f} ms"
              f"  ratio {r['ratio']:6.2f}  {'ok' if r['ok'] else 'MISSED'}  ({r['note']})")
    print(f"appended {len(rows)} rows to {append_csv(args.csv, rows)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
