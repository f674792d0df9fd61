"""The training loop of ``cogsim run``: data → model → AdamW + sparse table updates → evaluation →
checkpoints, with exact resume and a NaN/Inf guard."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import yaml

from cogsim import native, threads
from cogsim.data import tasks
from cogsim.data.batches import TaskMixSampler, WindowSampler, task_stream, validation_windows
from cogsim.data.corpus import load_corpus
from cogsim.data.synthetic import IGNORE
from cogsim.data.synthetic.stream import TaskSampler, validation_batches
from cogsim.data.tokenizer import EOT, TokenData, prepare, token_bytes
from cogsim.errors import CogsimError
from cogsim.evaluate.metrics import answer_hits, evaluate, evaluate_answers
from cogsim.evaluate.probes import flatten, run_probes, to_json
from cogsim.graph.build import build_plan
from cogsim.graph.spec import ArchSpec
from cogsim.model import CognitiveModel
from cogsim.train import checkpoint, distributed, metrics_log, tensorboard
from cogsim.train.schedule import lr_at


class TrainingDiverged(CogsimError):
    """The loss or gradients became NaN/Inf; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CogsimError(f"--device {name}: not a device name (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CogsimError(f"--device {name}: CUDA is not available on this machine")
    return device


def make_optimizer(model: CognitiveModel, s) -> torch.optim.AdamW:
    """AdamW over dense parameters (no decay on vectors); sparse tables are left to components."""
    sparse = model.sparse_parameters()
    decay, no_decay = [], []
    for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad and id(p) not in sparse:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, betas=(s.beta1, s.beta2), eps=1e-8)


@dataclass
class Progress:
    """Callbacks the CLI uses to show progress (all optional)."""

    on_start: Callable[[int, int], None] = lambda start, total: None
    on_step: Callable[[int, float, float], None] = lambda step, loss, tokens_per_s: None
    on_eval: Callable[[int, dict], None] = lambda step, metrics: None
    on_stop: Callable[[], None] = lambda: None


@dataclass
class Trainer:
    """Trains one architecture into a run folder. ``train()`` returns the summary."""

    spec: ArchSpec
    run_dir: Path
    device: str = "auto"
    resume: bool = False
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.world, self.dev = distributed.join(resolve_device(self.device))
        if not self.world.main:
            self.progress = Progress()
        self.s = self.spec.train
        self.seq_len = self.spec.model.seq_len
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.events: tensorboard.EventWriter | None = None  # opened by train() when train.tensorboard is set

    # ---- setup ---------------------------------------------------------------------------------
    def _check_run_dir(self) -> dict | None:
        found = checkpoint.find(self.run_dir)
        if found is None:
            if self.resume:
                raise CogsimError(f"--resume: no checkpoint in {self.run_dir}")
            return None
        if not self.resume:
            raise CogsimError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                              "another --out")
        return {"folder": found}

    def setup(self) -> None:
        world = self.world
        distributed.check_batch(self.s.batch_size, world)
        existing = self._check_run_dir()
        world.barrier()  # every rank has looked at the run folder before rank 0 writes to it
        if world.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:  # rank 0 trains the tokenizer and fills the cache first, however long it takes
            world.barrier(patient=True)
        self.task = self.spec.task
        if self.task is None:
            corpus = load_corpus(self.spec.data.path, self.spec.data.val_percent)
            self.data: TokenData | None = prepare(corpus, self.spec.model.vocab_size, self.spec.data.tokenizer_sample_mb)
            self.token_bytes = token_bytes(self.data.tokenizer)
            self.corpus_name, self.vocab_size = corpus.name, self.data.vocab_size
        else:  # a synthetic task: its own vocabulary and sequence length, no corpus, no tokenizer
            self.data, self.corpus_name = None, f"task {self.task.name}"
            self.vocab_size, self.seq_len = self.task.vocab_size, self.task.seq_len
        if world.main:
            world.barrier(patient=True)
        torch.manual_seed(self.s.seed)
        self.plan = build_plan(self.spec, vocab_size=self.vocab_size)
        self.model = CognitiveModel(self.plan).to(self.dev)
        self.model.attach_run_dir(self.run_dir)
        if self.data is not None:
            self.model.attach_tokenizer(self.data.tokenizer)
        distributed.place_rows(self.model, world, self.s.batch_size)
        self.opt = make_optimizer(self.model, self.s)
        self.sampler = self._sampler()
        if self.data is not None:
            self.val = validation_windows(self.data.val, self.seq_len, self.s.eval_batches * self.s.batch_size)
        self.step, self.history = 0, []
        config = self.spec.resolved()
        if existing:
            self._restore(existing["folder"], config)
        elif world.main:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            if self.data is not None:
                self.data.tokenizer.save(str(self.run_dir / "tokenizer.json"))
            self.metrics_path.write_text("")
        self.net = distributed.wrap(self.model, world, self.dev)

    def _sampler(self) -> WindowSampler | TaskSampler:
        """Corpus windows, with a share ``data.task_mix`` of generated probe-task text mixed in; or
        the batches of the synthetic task."""
        if self.task is not None:
            return TaskSampler(self.task, self.s.batch_size)
        share, s = self.spec.data.task_mix, self.s
        if share <= 0:
            return WindowSampler(self.data.train, self.seq_len, s.batch_size, s.seed)
        tok = self.data.tokenizer
        count = min(20000, max(256, math.ceil(1.5 * s.steps * s.batch_size * share)))
        counter = lambda texts: [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
        docs = tasks.training_documents(counter, self.seq_len, count, s.seed)
        if not docs:
            raise CogsimError(f"data.task_mix: no probe task fits model.seq_len = {self.seq_len} tokens; "
                              "set data.task_mix=0 or raise model.seq_len")
        task_tokens, starts = task_stream(tok, [d.text for d in docs], tok.token_to_id(EOT))
        return TaskMixSampler(self.data.train, self.seq_len, s.batch_size, s.seed, task_tokens, starts, share)

    def probe(self) -> dict:
        """The probe tasks (cogsim.evaluate.probes) on the trained model; also written to probes.json."""
        results = run_probes(self.model, self.data.tokenizer, self.seq_len, self.spec.data.probe_count,
                             batch_size=self.s.batch_size)
        (self.run_dir / "probes.json").write_text(json.dumps(to_json(results), indent=2))
        return flatten(results)

    def _restore(self, folder: Path, config: dict) -> None:
        model_state, extra, record = checkpoint.load(folder)
        saved = dict(record.get("config", {}))
        now = dict(config)
        for c in (saved, now):  # a longer run, or TensorBoard events from now on, is the same run
            for key in ("steps", "tensorboard"):
                c.get("train", {}).pop(key, None)
        if json.dumps(saved, sort_keys=True, default=str) != json.dumps(now, sort_keys=True, default=str):
            raise CogsimError(f"--resume: the architecture or settings differ from the run saved in {self.run_dir}"
                              " (only train.steps may change)")
        checkpoint.restore_model(self.model, model_state, extra, folder)
        checkpoint.load_optimizer_tensors(self.opt, extra)
        torch.set_rng_state(extra["rng.torch"])
        self.sampler.load_state(extra["rng.sampler"])
        self.step, self.history = record["step"], record.get("history", [])
        if not self.world.main:
            return
        metrics_log.write_rows(self.metrics_path, [r for r in metrics_log.read_rows(self.metrics_path)
                                                   if r.get("step", 0) <= self.step])

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        if not self.world.main:
            return
        metrics_log.append_row(self.metrics_path, row)
        if self.events is not None:
            self.events.add(row)

    def _save(self) -> None:
        extra = checkpoint.optimizer_tensors(self.opt)
        for name, comp in self.model.components():
            for key, value in comp.sparse_state_dict().items():
                extra[f"sparse.{name}.{key}"] = value
        extra["rng.torch"] = torch.get_rng_state()
        extra["rng.sampler"] = self.sampler.state()
        record = {"step": self.step, "config": self.spec.resolved(), "history": self.history,
                  "vocab_size": self.vocab_size, "torch": torch.__version__, "ranks": self.world.size}
        shards = {f"{name}.{key}": v for name, comp in self.model.components() for key, v in comp.row_shards().items()}
        model_state = distributed.gather_states(self.model, self.world, self.s.batch_size)
        checkpoint.save(self.run_dir, model_state, extra, record, shards, self.world)

    def evaluate(self) -> dict:
        if self.task is not None:  # loss and accuracy at the answers of the validation stream
            inputs, targets = validation_batches(self.task, self.s.eval_batches, self.s.batch_size, self.step)
            if self.world.parallel:
                return distributed.evaluate_answers(self.model, inputs, targets, self.s.batch_size, self.dev,
                                                    self.world, autocast=self.dev.type == "cuda")
            return evaluate_answers(self.model, inputs, targets, self.s.batch_size, self.dev,
                                    autocast=self.dev.type == "cuda")
        if self.world.parallel:
            return distributed.evaluate(self.model, *self.val, self.token_bytes, self.s.batch_size, self.dev,
                                        self.world, autocast=self.dev.type == "cuda")
        return evaluate(self.model, *self.val, self.token_bytes, self.s.batch_size, self.dev,
                        autocast=self.dev.type == "cuda")

    # ---- the loop ------------------------------------------------------------------------------
    def _local(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This rank's block of rows of a global batch, on the device, and the number of targets the
        whole global batch scores (a task's answers; every token of text)."""
        rows = self.world.rows(len(x))
        scored = int((y != IGNORE).sum())
        return x[rows].to(self.dev, non_blocking=True), y[rows].to(self.dev, non_blocking=True), scored

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, scored: int) -> torch.Tensor:
        """Mean cross-entropy over the scored targets of the global batch (task targets: answers
        only). Under data parallel each rank sums over its rows and divides by the global count / N,
        so DDP's average of the ranks' gradients is one process's gradient, whatever the number of
        answers in each rank's rows."""
        logits = logits.float().flatten(0, 1)
        if not self.world.parallel:
            return F.cross_entropy(logits, y.flatten(), ignore_index=IGNORE)
        total = F.cross_entropy(logits, y.flatten(), ignore_index=IGNORE, reduction="sum")
        return total * (self.world.size / max(1, scored))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The next batch (this rank's rows, global count of scored targets): the one prefetched
        during the previous step if any."""
        x, y = self.sampler.next()
        ahead, self._ahead = getattr(self, "_ahead", None), None
        return ahead if ahead is not None else self._local(x, y)

    def _prefetch_next(self) -> None:
        """Start fetching the next batch's memory rows (Engram), so the fetch overlaps this step's
        backward and optimizer; the sampler's state is put back, so the next step draws that batch."""
        state = self.sampler.state()
        self._ahead = self._local(*self.sampler.next())
        self.sampler.load_state(state)
        self.model.prefetch(self._ahead[0])

    def train_step(self) -> float:
        x, y, scored = self._batch()  # the global batch; this rank trains on its block of rows
        lr = lr_at(self.step, self.s)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.dev.type == "cuda"):
            logits = self.net(x)
        loss = self._loss(logits, y, scored)
        if self.task is not None:
            self.hits = answer_hits(logits.detach(), y)
            if self.world.parallel:  # counted over the global batch
                self.hits = tuple(int(v) for v in self.world.all_sum(torch.tensor(self.hits)).tolist())
        mean = self.world.all_sum(loss / self.world.size) if self.world.parallel else loss.detach()  # global mean
        if not torch.isfinite(mean):  # the same decision on every rank
            self._diverged(f"loss became {float(mean)}")
        if self.step + 1 < self.s.steps:
            self._prefetch_next()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.s.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                                  self.s.grad_clip)
            if not torch.isfinite(norm):
                self._diverged(f"gradient norm became {float(norm)}")
        self.opt.step()
        for _, comp in self.model.components():
            comp.sparse_step(lr)
        self.step += 1
        return float(mean)

    def _diverged(self, what: str) -> None:
        found = checkpoint.find(self.run_dir)
        kept = (f"the last good checkpoint (step {json.loads((found / 'state.json').read_text())['step']}) "
                f"is kept in {found}") if found else "no checkpoint had been written yet"
        raise TrainingDiverged(f"{what} at step {self.step + 1}; training stopped, {kept}. "
                               "Lower train.lr or check the architecture.")

    def train(self, stop_after: int | None = None) -> dict:
        """Train to ``spec.train.steps`` (or ``stop_after`` more steps, keeping a checkpoint)."""
        with distributed.guard(self.world):
            return self._train(stop_after)

    def _train(self, stop_after: int | None) -> dict:
        self.setup()
        s = self.s
        self.events = tensorboard.open_writer(self.run_dir, self.step) if s.tensorboard and self.world.main else None
        end = s.steps if stop_after is None else min(s.steps, self.step + stop_after)
        self.progress.on_start(self.step, s.steps)
        self.model.train()
        tokens_per_step = s.batch_size * self.seq_len
        window_loss, window_steps, t_window = 0.0, 0, time.perf_counter()
        window_hits = [0, 0]  # synthetic tasks: correct answers, answers (online, before each update)
        t0 = time.perf_counter()
        first_eval = self.history[0] if self.history else None
        if first_eval is None and self.step == 0:
            first_eval = {"step": 0, **self.evaluate()}
            self.history.append(first_eval)
            self._log(first_eval)
            self.progress.on_eval(0, first_eval)
        try:
            while self.step < end:
                loss = self.train_step()
                window_loss += loss
                window_steps += 1
                if self.task is not None:
                    window_hits = [window_hits[0] + self.hits[0], window_hits[1] + self.hits[1]]
                if self.step % s.log_every == 0 or self.step == end:
                    dt = time.perf_counter() - t_window
                    tps = window_steps * tokens_per_step / max(dt, 1e-9)
                    row = {"step": self.step, "loss": window_loss / window_steps, "lr": lr_at(self.step - 1, s),
                           "tokens_per_s": tps, "elapsed_s": time.perf_counter() - t0}
                    if window_hits[1]:
                        row["train_accuracy"] = window_hits[0] / window_hits[1]
                    self._log(row)
                    self.progress.on_step(self.step, window_loss / window_steps, tps)
                    window_loss, window_steps, t_window = 0.0, 0, time.perf_counter()
                    window_hits = [0, 0]
                if self.step % s.eval_every == 0 or self.step == s.steps:
                    row = {"step": self.step, **self.evaluate()}
                    self.history.append(row)
                    self._log(row)
                    self.progress.on_eval(self.step, row)
                if self.step % s.checkpoint_every == 0 or self.step == end:
                    self._save()
        except KeyboardInterrupt:
            self._save()
            raise
        finally:
            self.progress.on_stop()
            if self.events is not None:
                self.events.close()
        elapsed = time.perf_counter() - t0
        distributed.collect_on_main(self.model, self.world, s.batch_size)  # rank 0 goes on alone
        self.net = self.model  # evaluation from here on runs on the plain model, not the DDP wrapper
        distributed.leave(self.world)
        if not self.world.main:
            return {"steps": self.step, "rank": self.world.rank}
        summary = self.summary(elapsed)
        if self.task is None and self.spec.data.probe_count > 0 and self.step >= s.steps:
            t_probe = time.perf_counter()
            summary["probes"] = self.probe()
            summary["probe_seconds"] = time.perf_counter() - t_probe
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def summary(self, elapsed: float) -> dict:
        rows = metrics_log.read_rows(self.metrics_path)
        losses = [r["loss"] for r in rows if "loss" in r]
        evals = [r for r in rows if "val_loss" in r]
        out = {
            "architecture": self.spec.name, "run_dir": str(self.run_dir), "corpus": self.corpus_name,
            "device": str(self.dev), "parameters": sum(p.numel() for p in self.model.parameters()),
            "vocab_size": self.vocab_size, "steps": self.step, "tokens": self.step * self.s.batch_size * self.seq_len,
            "seconds": elapsed, "first_train_loss": losses[0] if losses else math.nan,
            "last_train_loss": losses[-1] if losses else math.nan,
            "first_val_loss": evals[0]["val_loss"] if evals else math.nan,
            "val_loss": evals[-1]["val_loss"] if evals else math.nan,
            "val_bpb": evals[-1].get("val_bpb", math.nan) if evals else math.nan,
            "tokens_per_s": (sum(r["tokens_per_s"] for r in rows if "tokens_per_s" in r) /
                             max(1, sum(1 for r in rows if "tokens_per_s" in r))),
            "threads": threads.current(), "native_kernels": native.describe(),
        }
        if self.task is not None:  # accuracy at the answers of the validation stream, against chance
            del out["val_bpb"]
            out.update({"task": self.task.name, "task_accuracy": evals[-1]["task_accuracy"] if evals else math.nan,
                        "task_chance": self.task.chance, "task_answer": self.task.answer_kind,
                        **self.task.report(rows)})
        return out
