"""``cogsim check FILE``: validate an architecture and summarise nodes, edges, parameters and memory."""
from __future__ import annotations

import argparse


from cogsim import native
from cogsim.api import plan_of
from cogsim.commands.common import ReadableTable, add_spec_arguments, console, human_bytes, human_count
from cogsim.model import CognitiveModel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="vocabulary size to assume (default: the file's model.vocab_size)")


def estimate(model: CognitiveModel) -> list[dict]:
    """Per node: dense parameters, AdamW state (two moments) and memory held outside them."""
    sparse = model.sparse_parameters()
    rows = []
    for name, comp in model.components():
        params = [p for p in comp.parameters() if id(p) not in sparse]
        dense = sum(p.numel() for p in params)
        dense_bytes = sum(p.numel() * p.element_size() for p in params)
        rows.append({"node": name, "type": model.plan.nodes[name].type, "params": dense,
                     "dense_bytes": dense_bytes, "optimizer_bytes": 2 * dense_bytes,
                     "other": comp.memory_estimate()})
    return rows


def run(args: argparse.Namespace) -> int:
    plan = plan_of(args.arch, vocab_size=args.vocab_size, overrides=args.overrides)
    model = CognitiveModel(plan)
    con = console()
    s = plan.spec
    con.print(f"[bold]{s.name}[/bold] ({s.file}) is valid. {s.description}")
    con.print(f"d_model {plan.sizes.d_model}, heads {plan.sizes.n_heads}, seq_len {plan.sizes.seq_len}, "
              f"vocab {plan.sizes.vocab_size}, cycles {plan.cycles}")
    nodes = ReadableTable(title="nodes (execution order)")
    for col in ("node", "type", "in", "out", "params", "weights", "AdamW", "other memory"):
        nodes.add_column(col, justify="right" if col in ("params", "weights", "AdamW") else "left")
    rows = estimate(model)
    for row in rows:
        info = plan.nodes[row["node"]]
        other = ", ".join(f"{k} {human_bytes(v)}" for k, v in row["other"].items()) or "-"
        nodes.add_row(row["node"], row["type"], ", ".join(info.inputs), ", ".join(info.outputs),
                      human_count(row["params"]), human_bytes(row["dense_bytes"]),
                      human_bytes(row["optimizer_bytes"]), other)
    con.print(nodes)
    edges = ReadableTable(title="edges")
    for col in ("from", "to", "carries", "how", "line"):
        edges.add_column(col)
    for e in plan.edges:
        port = plan.nodes[e.dst].inputs[e.dst_port]
        how = "feedback" if e.feedback else e.origin
        edges.add_row(f"{e.src}.{e.src_port}", f"{e.dst}.{e.dst_port}", port.describe(), how, str(e.line or ""))
    con.print(edges)
    dense = sum(r["dense_bytes"] for r in rows)
    other = sum(v for r in rows for v in r["other"].values())
    con.print(f"parameters {human_count(sum(r['params'] for r in rows))}; memory estimate: dense weights "
              f"{human_bytes(dense)} + AdamW state {human_bytes(2 * dense)} + gradients {human_bytes(dense)}"
              f" + tables/other {human_bytes(other)} = {human_bytes(4 * dense + other)}")
    con.print(native.describe(), soft_wrap=True)
    return 0
