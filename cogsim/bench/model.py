"""``cogsim bench model ARCH``: training and inference tokens/s of an architecture against the plain
transformer of the same sizes (and, if it has one, the architecture without its workspace), all
measured in the same run with interleaved timing."""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cogsim.bench.common import add_csv_argument, append_csv, sync
from cogsim.commands.common import ReadableTable, add_spec_arguments, console, human_count
from cogsim.graph.ablate import plain_transformer, remove_nodes
from cogsim.graph.build import build_plan
from cogsim.component import Context
from cogsim.graph.spec import ArchSpec, read_spec
from cogsim.model import CognitiveModel
from cogsim.train.trainer import make_optimizer, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=None, help="default: the file's model.seq_len")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per variant (median reported)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--without", action="append", default=[], metavar="NODE",
                        help="also measure the architecture without NODE (repeatable); a workspace node is "
                             "added automatically")
    add_csv_argument(parser, "model.csv")


class Subject:
    """One model variant with its optimizer, ready to time a training step and an inference pass."""

    def __init__(self, label: str, spec: ArchSpec, device: torch.device, batch: int, seq_len: int) -> None:
        torch.manual_seed(0)
        self.label, self.device = label, device
        self.model = CognitiveModel(build_plan(spec)).to(device)
        self.opt = make_optimizer(self.model, spec.train)
        vocab = spec.model.vocab_size
        gen = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, vocab, (batch, seq_len + 1), generator=gen).to(device)
        self.tokens = batch * seq_len
        self.params = sum(p.numel() for p in self.model.parameters())
        self.autocast = device.type == "cuda"

    def train_step(self) -> None:
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(self.ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), self.ids[:, 1:].flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        for _, comp in self.model.components():
            comp.sparse_step(1e-3)

    @torch.no_grad()
    def infer(self) -> None:
        self.model.eval()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            self.model(self.ids[:, :-1])


def node_calls(subject: Subject) -> list[tuple[str, dict, "Context"]]:
    """Inputs of every node call in one training forward (per cycle), detached, for isolated timing.
    A tensor that reaches several calls (a value reused on a later cycle) stays one tensor."""
    calls = []
    memo: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, comp in subject.model.components():

        def spy(inputs, ctx, _name=name, _orig=comp.forward):
            calls.append((_name, _detach(inputs, memo), Context(ctx.cycle, ctx.cycles, None, _name)))
            return _orig(inputs, ctx)

        comp.forward = spy
    try:
        subject.model.train()
        subject.model(subject.ids[:, :-1])
    finally:
        for name, comp in subject.model.components():
            del comp.forward  # back to the class method
    return calls


def _detach(value, memo: dict):
    if isinstance(value, dict):
        return {k: _detach(v, memo) for k, v in value.items()}
    if isinstance(value, list):
        return [_detach(v, memo) for v in value]
    if torch.is_tensor(value) and value.is_floating_point():
        if id(value) not in memo:  # keep the original alive so its id is not reused
            memo[id(value)] = (value, value.detach().clone().requires_grad_(True))
        return memo[id(value)][1]
    return value


def node_costs(subject: Subject, repeat: int) -> tuple[dict[str, float], float]:
    """Median seconds of forward + backward of each node on its captured inputs (all its cycles'
    calls in order, then one backward, as in training), and the median seconds of the whole
    training step timed in the same rounds (so that a change of machine load shifts both alike and
    the shares stay comparable)."""
    by_node: dict[str, list[tuple[dict, Context]]] = {}
    for name, inputs, ctx in node_calls(subject):
        by_node.setdefault(name, []).append((inputs, ctx))

    def make(name, calls):
        comp = subject.model.nodes[name]

        def step():
            total = 0
            for inputs, ctx in calls:
                out = comp(inputs, ctx)
                total = total + sum(v.float().square().mean() for v in out.values()
                                    if torch.is_tensor(v) and v.requires_grad)
            if torch.is_tensor(total):
                total.backward()
        return step

    steps = [(name, make(name, calls)) for name, calls in by_node.items()]
    steps.append(("", subject.train_step))  # the whole step, last of every round
    times: dict[int, list[float]] = {i: [] for i in range(len(steps))}
    for _, fn in steps:
        fn()
    for _ in range(repeat):
        for i, (_, fn) in enumerate(steps):
            sync(subject.device)
            t0 = time.perf_counter()
            fn()
            sync(subject.device)
            times[i].append(time.perf_counter() - t0)
    costs = {name: statistics.median(times[i]) for i, (name, _) in enumerate(steps[:-1])}
    return costs, statistics.median(times[len(steps) - 1])


def interleaved(subjects: list[Subject], what: str, repeat: int) -> dict[str, float]:
    """Median seconds per call of ``what`` for each subject, rounds interleaved across subjects."""
    times: dict[str, list[float]] = {s.label: [] for s in subjects}
    for s in subjects:  # warm-up
        getattr(s, what)()
    for _ in range(repeat):
        for s in subjects:
            sync(s.device)
            t0 = time.perf_counter()
            getattr(s, what)()
            sync(s.device)
            times[s.label].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def variants(spec: ArchSpec, without: list[str]) -> list[tuple[str, ArchSpec]]:
    out = [(spec.name, spec)]
    workspaces = [n for n, s in spec.nodes.items() if s.type == "workspace"]
    for name in dict.fromkeys(without + workspaces):
        out.append((f"without {name}", remove_nodes(spec, [name])))
    plain = plain_transformer(spec)
    if plain.nodes.keys() != spec.nodes.keys():
        out.append(("plain transformer", plain))
    return out


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"model.seq_len={args.seq_len}"] if args.seq_len else [])
    spec = read_spec(args.arch, overrides)
    device = resolve_device(args.device)
    seq_len = spec.model.seq_len
    subjects = [Subject(label, s, device, args.batch_size, seq_len) for label, s in variants(spec, args.without)]
    con = console()
    con.print(f"bench model: {spec.name}, batch {args.batch_size} × {seq_len} tokens on {device}, "
              f"{args.repeat} interleaved rounds")
    train = interleaved(subjects, "train_step", args.repeat)
    infer = interleaved(subjects, "infer", args.repeat)
    base = subjects[-1].label
    table = ReadableTable(title=f"tokens/s (ratio = step time / {base}'s step time, same run)")
    for col in ("variant", "params", "train tok/s", "train ms", "train ratio", "infer tok/s", "infer ratio"):
        table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    rows = []
    for s in subjects:
        row = {"bench": "model", "arch": spec.name, "variant": s.label, "device": str(device),
               "batch": args.batch_size, "seq_len": seq_len, "params": s.params,
               "train_ms": train[s.label] * 1e3, "train_tokens_per_s": s.tokens / train[s.label],
               "baseline": base, "train_ratio": train[s.label] / train[base],
               "infer_ms": infer[s.label] * 1e3, "infer_tokens_per_s": s.tokens / infer[s.label],
               "infer_ratio": infer[s.label] / infer[base]}
        rows.append(row)
        table.add_row(s.label, human_count(s.params), f"{row['train_tokens_per_s']:,.0f}", f"{row['train_ms']:.1f}",
                      f"{train[s.label] / train[base]:.2f}×", f"{row['infer_tokens_per_s']:,.0f}",
                      f"{infer[s.label] / infer[base]:.2f}×")
    con.print(table)
    for label in train:
        if label.startswith("without "):
            share = 1 - train[label] / train[spec.name]
            # a node that sends feedback also makes the later cycles run: its removal saves both
            con.print(f"removing {label[8:]} saves {share:.1%} of {spec.name}'s training step time "
                      "(the node and everything it makes run, e.g. the cycles of its feedback edges)")
            rows[0][f"share_of_step_{label[8:]}"] = share  # e.g. share_of_step_workspace
    costs, step_s = node_costs(subjects[0], args.repeat)
    breakdown = ReadableTable(title=f"where {spec.name}'s training step goes: each node's forward+backward on its "
                            f"own inputs, all cycles, against the whole step ({step_s * 1e3:.0f} ms) timed "
                            "in the same rounds")
    for col in ("node", "type", "ms", "share of step"):
        breakdown.add_column(col, justify="left" if col in ("node", "type") else "right")
    for name, sec in costs.items():
        share = sec / step_s
        breakdown.add_row(name, spec.nodes[name].type, f"{sec * 1e3:.1f}", f"{share:.1%}")
        rows[0][f"node_share_{name}"] = share
    rest = step_s - sum(costs.values())
    breakdown.add_row("(rest)", "loss, optimizer", f"{rest * 1e3:.1f}", f"{rest / step_s:.1%}")
    rows[0]["node_breakdown_step_ms"] = step_s * 1e3
    con.print(breakdown)
    path = append_csv(args.csv, rows)
    con.print(f"appended to {path}")
    return 0
