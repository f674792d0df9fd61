"""``cogsim run ARCH``: train on the embedded corpus (or --data), evaluate, save a run folder and
print a summary table."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

from cogsim.commands.common import ReadableTable, add_spec_arguments, console, human_count, to_terminal
from cogsim.errors import CogsimError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import read_spec
from cogsim.threads import share_cores
from cogsim.train import tensorboard
from cogsim.train.distributed import main_rank
from cogsim.train.trainer import Progress, Trainer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--steps", type=int, help="training steps (train.steps)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (train.batch_size)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (model.seq_len)")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    parser.add_argument("--data", help="a text file or folder of text files (default: the Python stdlib source)")
    parser.add_argument("--task", help="train on a synthetic memory task instead of text (data.task): "
                        "mqar, facts, copy, motifs, count; its parameters with --set data.KEY=VALUE")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--out", help="run folder (default: runs/<name>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out exactly")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop after N steps of this invocation, keeping a checkpoint (continue with --resume)")
    parser.add_argument("--no-viz", action="store_true", help="skip figures and the report at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the metrics as TensorBoard events in RUN/tensorboard (train.tensorboard)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch and the native kernels (default: all cores; with runs side by "
                             "side, give each cores/runs)")


def overrides_from(args: argparse.Namespace) -> list[str]:
    flags = {"train.steps": args.steps, "train.batch_size": args.batch_size, "model.seq_len": args.seq_len,
             "train.seed": args.seed}
    out = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.data is not None:
        out.append(f"data.path={Path(args.data).expanduser().resolve()}")
    if getattr(args, "task", None) is not None:
        out.append(f"data.task={args.task}")
    if getattr(args, "tensorboard", False):
        out.append("train.tensorboard=true")
    return out + list(args.overrides)


def _progress(quiet: bool) -> tuple[Progress, Bar | None]:
    """A progress bar in a terminal; in a pipe or a log file (where a bar shows nothing until the end)
    one line per ``train.log_every`` steps with the training loss."""
    if quiet:
        return Progress(), None
    con = console()

    def on_eval(step, row):
        score = (f"answer accuracy {row['task_accuracy']:.3f}" if "task_accuracy" in row
                 else f"{row['val_bpb']:.4f} bits/byte")
        con.print(f"step {step}: val loss {row['val_loss']:.4f}, {score}")

    task = {}
    if not to_terminal():
        def log_start(step, total):
            task["total"] = total

        def log_step(step, loss, tps):
            con.print(f"step {step}/{task['total']}: train loss {loss:.4f}, {tps:,.0f} tok/s")

        return Progress(log_start, log_step, on_eval), None
    bar = Bar(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
              TimeRemainingColumn(), console=con, transient=False)

    def start(step, total):
        bar.start()
        task["id"] = bar.add_task("train", total=total, completed=step, info="")

    def on_step(step, loss, tps):
        bar.update(task["id"], completed=step, info=f"loss {loss:.3f}  {tps:,.0f} tok/s")

    return Progress(start, on_step, on_eval, bar.stop), bar


def summary_table(summary: dict) -> ReadableTable:
    table = ReadableTable(title=f"run summary: {summary['architecture']}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("run folder", summary["run_dir"]), ("device", summary["device"]), ("corpus", summary["corpus"]),
        ("parameters", human_count(summary["parameters"])), ("vocabulary", str(summary["vocab_size"])),
        ("steps", str(summary["steps"])), ("tokens", human_count(summary["tokens"])),
        ("time", f"{summary['seconds']:.1f} s"), ("throughput", f"{summary['tokens_per_s']:,.0f} tok/s"),
        ("train loss", f"{summary['first_train_loss']:.4f} → {summary['last_train_loss']:.4f}"),
        ("validation loss", f"{summary['first_val_loss']:.4f} → {summary['val_loss']:.4f}"),
    ]
    if "task_accuracy" in summary:
        rows.append(("answer accuracy", f"{summary['task_accuracy']:.3f} (chance {summary['task_chance']:.3f})"))
        if "recovery_steps" in summary:
            rows.append(("accuracy before → after the switch",
                         f"{summary['accuracy_before_switch']:.3f} → {summary['accuracy_after_switch']:.3f}"))
            rows.append(("steps to recover after the switch", str(summary["recovery_steps"] or "not recovered")))
    else:
        rows.append(("validation bits/byte", f"{summary['val_bpb']:.4f}"))
    if "threads" in summary:  # (summaries written before these fields had none)
        rows += [("threads", f"torch {summary['threads']['torch']}, native kernels {summary['threads']['native']}"),
                 ("native kernels", summary["native_kernels"].split(": ", 1)[-1])]
    for what, value in rows:
        table.add_row(what, value)
    return table


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise CogsimError(f"--threads must be at least 1, got {args.threads}")
        share_cores(1, args.threads)
    spec = read_spec(args.arch, overrides_from(args))
    build_plan(spec)  # every mistake in the file is reported before any data is read
    out = Path(args.out or Path("runs") / f"{spec.name}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    progress, _ = _progress(args.quiet or not main_rank())
    trainer = Trainer(spec, out, device=args.device, resume=args.resume, progress=progress)
    con = console()
    if trainer.world.main:
        ranks = f" on {trainer.world.size} ranks" if trainer.world.parallel else ""
        con.print(f"cogsim run: {spec.name} → {out}{ranks}")
        if spec.train.tensorboard and not tensorboard.available():
            print(f"cogsim run: note: train.tensorboard: {tensorboard.MISSING}", file=sys.stderr)
    summary = trainer.train(stop_after=args.stop_after)
    if not trainer.world.main:  # rank 0 reports for everyone
        return 0
    con.print(summary_table(summary))
    if not args.no_viz and summary["steps"] >= spec.train.steps and importlib.util.find_spec("cogsim.viz.report"):
        from cogsim.viz.report import write_report

        report = write_report(out, model=trainer.model, data=trainer.data)
        con.print(f"figures and report: {report}")
    return 0
