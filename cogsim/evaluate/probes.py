"""Running the probe tasks of :mod:`cogsim.data.tasks` on a model → accuracies and AUCs.

Question tasks are scored by teacher-forced exact match (equal to greedy decoding's, without a
decoding loop); anomaly streams by the ROC AUC of per-word scores from the LM's surprisal and from
the HTM signal. Probes leave the model as they found it. Details: docs/design.md §9.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from cogsim.data import tasks
from cogsim.data.tokenizer import EOT
from cogsim.evaluate.stats import roc_auc

#: probe metric names, as they appear in summaries and ablation tables (all: higher is better)
METRICS = ("recall", "needle", "vartrack", "anomaly_lm", "anomaly_htm")


@dataclass
class ProbeResult:
    """One probe metric: ``value`` is an accuracy (question tasks) or an AUC (anomaly), None = n/a."""

    metric: str
    value: float | None
    kind: str  # "accuracy" or "auc"
    n: int  # scored answers (question tasks) or scored words (anomaly)
    level: object = None  # the task size level used (see tasks.LEVELS)
    chance: float | None = None  # what guessing gets (question tasks: among values in context)
    token_accuracy: float | None = None  # question tasks: share of answer tokens that are the argmax
    note: str = ""


@dataclass
class _Encoded:
    ids: list[int]
    groups: list[list[int]]  # token indices of each scored span


def _encode(tokenizer, inst: tasks.Instance) -> _Encoded:
    enc = tokenizer.encode(inst.text, add_special_tokens=False)
    groups = []
    for a, b in inst.spans:
        idx = [j for j, (s, e) in enumerate(enc.offsets) if s < b and e > a]
        if not idx or idx[0] == 0:
            raise ValueError(f"span {inst.text[a:b]!r} of a {inst.task} probe has no token after the first")
        groups.append(idx)
    return _Encoded(list(enc.ids), groups)


def token_hits(logp: torch.Tensor, ids: list[int], groups: list[list[int]]) -> list[torch.Tensor]:
    """Per scored span (token indices ``groups``): which of its tokens are the argmax of the
    prediction made at the position before? ``logp`` [T, V] are the model's outputs for ``ids``."""
    pred = logp.argmax(-1)
    target = torch.as_tensor(ids)
    return [pred[torch.as_tensor(g) - 1] == target[torch.as_tensor(g)] for g in groups]


def exact_matches(logp: torch.Tensor, ids: list[int], groups: list[list[int]]) -> list[bool]:
    """Per scored span: is every one of its tokens the argmax (the greedy continuation)?"""
    return [bool(h.all()) for h in token_hits(logp, ids, groups)]


def surprisal(logp: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """−log p(token_t | tokens before t) per position [T] (0 at position 0, which has no prediction)."""
    target = torch.as_tensor(ids)
    out = torch.zeros(len(target))
    out[1:] = -logp[torch.arange(len(target) - 1), target[1:]]
    return out


def span_scores(token_scores: torch.Tensor, groups: list[list[int]]) -> list[float]:
    """A span's (word's) score: the largest score over its tokens."""
    return [float(token_scores[torch.as_tensor(g)].max()) for g in groups]


def _token_counter(tokenizer):
    return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def _htm_signal(model) -> tuple[str, str] | None:
    """(node, output port) of the first ``htm`` node's anomaly signal, if the model has one."""
    for name, info in model.plan.nodes.items():
        if info.type == "htm":
            ports = [p for p, port in info.outputs.items() if port.kind == "signal"]
            if ports:
                return name, "anomaly" if "anomaly" in ports else ports[0]
    return None


class _Runner:
    """Batches encoded texts through the model, collecting logits (and an HTM signal if asked)."""

    def __init__(self, model, pad_id: int, batch_size: int) -> None:
        self.model, self.pad_id, self.batch_size = model, pad_id, batch_size
        self.device = next(model.parameters()).device

    def __call__(self, encoded: list[_Encoded], signal: tuple[str, str] | None = None):
        """Yields (item index, log-probs [T, V], signal [T] or None) for every encoded text."""
        captured = {}
        handle = None
        if signal is not None:
            node, port = signal
            handle = self.model.nodes[node].register_forward_hook(
                lambda mod, args, out: captured.__setitem__("s", out[port].detach().float()))
        try:
            for start in range(0, len(encoded), self.batch_size):
                chunk = encoded[start : start + self.batch_size]
                length = max(len(e.ids) for e in chunk)
                ids = torch.full((len(chunk), length), self.pad_id, dtype=torch.long)
                for i, e in enumerate(chunk):
                    ids[i, : len(e.ids)] = torch.tensor(e.ids)
                for _, comp in self.model.components():
                    comp.online_state_reset()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    logits = self.model(ids.to(self.device))
                logp = F.log_softmax(logits.float(), dim=-1).cpu()
                sig = captured.get("s")
                for i in range(len(chunk)):
                    yield start + i, logp[i], (sig[i].cpu() if sig is not None else None)
        finally:
            if handle is not None:
                handle.remove()


def _question_task(task: str, runner: _Runner, tokenizer, seq_len: int, count: int, seed: int) -> ProbeResult:
    level = tasks.fit_level(task, _token_counter(tokenizer), seq_len, seed, tasks.PROBE_STREAM, sample=count)
    if level is None:
        return ProbeResult(task, None, "accuracy", 0, note=f"no {task} instance fits {seq_len} tokens")
    insts = tasks.instances(task, level, count, seed, tasks.PROBE_STREAM)
    encoded = [_encode(tokenizer, inst) for inst in insts]
    correct = total = tokens_right = tokens = 0
    for i, logp, _ in runner(encoded):
        for hits in token_hits(logp, encoded[i].ids, encoded[i].groups):
            correct += int(hits.all())
            total += 1
            tokens_right += int(hits.sum())
            tokens += len(hits)
    chance = {"recall": 1 / 900, "needle": 1 / level[0] if task == "needle" else None,
              "vartrack": 1 / (level[1] + 1) if task == "vartrack" else None}[task]
    return ProbeResult(task, correct / total, "accuracy", total, level, chance, tokens_right / tokens)


def _anomaly_task(runner: _Runner, model, tokenizer, seq_len: int, count: int, seed: int) -> list[ProbeResult]:
    level = tasks.fit_level("anomaly", _token_counter(tokenizer), seq_len, seed, tasks.PROBE_STREAM, sample=count)
    signal = _htm_signal(model)
    no_htm = "the architecture has no htm node"
    if level is None:
        note = f"no anomaly stream fits {seq_len} tokens"
        return [ProbeResult("anomaly_lm", None, "auc", 0, note=note),
                ProbeResult("anomaly_htm", None, "auc", 0, note=no_htm if signal is None else note)]
    insts = tasks.instances("anomaly", level, count, seed, tasks.PROBE_STREAM)
    encoded = [_encode(tokenizer, inst) for inst in insts]
    lm_scores, htm_scores, labels = [], [], []
    if signal is not None:
        model.nodes[signal[0]].train()  # online learning while reading (restored by run_probes)
    try:
        for i, logp, sig in runner(encoded, signal):
            lm_scores += span_scores(surprisal(logp, encoded[i].ids), encoded[i].groups)
            if sig is not None:
                htm_scores += span_scores(sig, encoded[i].groups)
            labels += insts[i].labels
    finally:
        model.eval()
    n = len(labels)
    lm = ProbeResult("anomaly_lm", roc_auc(lm_scores, labels), "auc", n, level, 0.5)
    if signal is None:
        htm = ProbeResult("anomaly_htm", None, "auc", n, level, 0.5, note=no_htm)
    else:
        htm = ProbeResult("anomaly_htm", roc_auc(htm_scores, labels), "auc", n, level, 0.5,
                          note=f"signal {signal[0]}.{signal[1]}")
    return [lm, htm]


@torch.no_grad()
def run_probes(model, tokenizer, seq_len: int, count: int = 32, seed: int = 0,
               batch_size: int = 16) -> dict[str, ProbeResult]:
    """Every probe metric of :data:`METRICS` on ``count`` held-out instances per task (sized to fit
    ``seq_len`` tokens). The model's weights, buffers and train/eval mode are left unchanged."""
    if count < 1:
        raise ValueError(f"count: must be >= 1, got {count}")
    was_training = model.training
    saved = copy.deepcopy(model.state_dict())
    pad = tokenizer.token_to_id(EOT)
    runner = _Runner(model, pad if pad is not None else 0, batch_size)
    model.eval()
    try:
        out = {t: _question_task(t, runner, tokenizer, seq_len, count, seed) for t in ("recall", "needle", "vartrack")}
        for r in _anomaly_task(runner, model, tokenizer, seq_len, count, seed):
            out[r.metric] = r
    finally:
        model.load_state_dict(saved)
        for _, comp in model.components():
            comp.online_state_reset()
        model.train(was_training)
    return out


def flatten(results: dict[str, ProbeResult]) -> dict[str, float | None]:
    """metric → value (None for n/a), the form kept in summaries and ablation tables."""
    return {m: (None if r.value is None or (isinstance(r.value, float) and math.isnan(r.value)) else r.value)
            for m, r in results.items()}


def to_json(results: dict[str, ProbeResult]) -> dict:
    return {m: {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(r).items()} for m, r in results.items()}


__all__ = ["METRICS", "ProbeResult", "exact_matches", "token_hits", "flatten", "run_probes", "span_scores", "surprisal", "to_json"]
