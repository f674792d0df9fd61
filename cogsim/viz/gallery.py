"""The figure gallery under ``viz/`` (shown in the README): trains the reference runs (unless a
finished run of the same length is there), draws their figures into ``viz/<name>/`` and writes
``viz/README.md`` with every figure, its caption and the commands that regenerate it.

    python -m cogsim.viz.gallery [--steps N] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from cogsim.viz.figures import Figure
from cogsim.viz.report import make_report

#: (gallery name, architecture file) of the reference runs, in README order (files not in the
#: repository yet are listed as such)
REFERENCE_RUNS = [("engram_snn", "architectures/engram_snn.yaml"), ("full", "architectures/full.yaml")]
#: the standard ablation suite and where `cogsim ablate` puts its comparison figure and tables
ABLATION_SUITE = "experiments/memory_ablations.yaml"
ABLATION_RESULTS = "experiments/results/memory_ablations"


def _finished(run_dir: Path, steps: int | None) -> bool:
    path = run_dir / "summary.json"
    if not path.exists():
        return False
    done = json.loads(path.read_text()).get("steps")
    return steps is None or done == steps


def _train(arch: str, run_dir: Path, steps: int | None) -> None:
    from cogsim.cli import main

    if run_dir.exists() and not _finished(run_dir, steps):
        shutil.rmtree(run_dir)  # a run of another length or an interrupted one: start over
    if not run_dir.exists():
        argv = ["run", arch, "--out", str(run_dir), "--no-viz"] + (["--steps", str(steps)] if steps else [])
        if main(argv) != 0:
            raise SystemExit(f"gallery: training {arch} failed")


def _figure_md(f: Figure, root: Path) -> str:
    return f"### {f.title}\n\n![{f.title}]({f.path.relative_to(root).as_posix()})\n\n{f.caption}\n"


def _probe_line(summary: dict) -> list[str]:
    probes = summary.get("probes") or {}
    if not probes:
        return []
    scores = ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in probes.items())
    return [f"Probe tasks (accuracy; AUC for anomaly): {scores}.\n"]


def _run_section(name: str, arch: str, run_dir: Path, steps: int | None, figures: list[Figure], summary: dict,
                 root: Path) -> str:
    steps_flag = f" --steps {steps}" if steps else ""
    lines = [f"## Reference run: `{arch}`\n",
             f"{summary.get('steps', '?')} training steps on {summary.get('corpus', 'the default corpus')}, "
             f"validation {summary.get('val_bpb', float('nan')):.3f} bits per byte "
             f"({summary.get('parameters', 0):,} parameters, {summary.get('device', '?')}).\n",
             *_probe_line(summary),
             "Regenerate every figure of this section (trains the run first if it is not there):\n",
             f"```bash\npython -m cogsim.viz.gallery --only {name}{steps_flag}\n```\n",
             "or, step by step:\n",
             f"```bash\npython -m cogsim run {arch}{steps_flag} --out {run_dir.as_posix()}\n"
             f"python -m cogsim viz {run_dir.as_posix()} --out viz/{name}\n```\n"]
    lines += [_figure_md(f, root) for f in figures]
    return "\n".join(lines)


def _ablation_section(root: Path) -> str:
    results = Path(ABLATION_RESULTS)
    lines = ["## Reference ablation: the memory systems of `engram_snn`\n",
             "The flagship against each memory system removed, the plain transformer of the same sizes and an "
             "Engram control with almost empty tables — same data, budget and seeds. Regenerate (about 45 "
             "minutes on a 2-core CPU):\n",
             f"```bash\npython -m cogsim ablate --suite {ABLATION_SUITE}\n"
             "python -m cogsim.viz.gallery --only ablation\n```\n"]
    figure = results / "ablation.png"
    if figure.exists():
        target = root / "ablation" / "ablation.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure, target)
        lines.append(f"![ablation comparison]({target.relative_to(root).as_posix()})\n")
        lines.append("Left: every variant's value per seed (dots) with mean ± standard deviation; right: the paired "
                     "difference against the full architecture with its 95% confidence interval (green: better "
                     "than the full architecture, red: worse, grey: the interval includes 0).\n")
        table = results / "ablation.md"
        if table.exists():
            lines.append(table.read_text())
    else:
        lines.append(f"*Not generated yet: `{figure}` does not exist; run the commands above.*\n")
    return "\n".join(lines)


HEADER = """# Gallery

What `cogsim` shows about a trained architecture: the figures of `cogsim viz` for reference runs
(every run folder gets the same figures, plus a self-contained `report.html`, at the end of
`cogsim run`), and the comparison figure of `cogsim ablate`. Token strings on the axes show
whitespace: `↵` newline, `·` space, `⇥` tab.

Regenerate everything: `python -m cogsim.viz.gallery{steps}` (trains what is missing).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cogsim.viz.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="training steps of the reference runs (default: the files' own)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"sections to redo: {', '.join(n for n, _ in REFERENCE_RUNS)}, ablation")
    parser.add_argument("--runs", default="runs/gallery", help="where the reference runs are trained")
    parser.add_argument("--out", default="viz", help="the gallery folder")
    args = parser.parse_args(argv)
    root, runs = Path(args.out), Path(args.runs)
    sections, used_steps = [], []
    for name, arch in REFERENCE_RUNS:
        run_dir = runs / name
        if not Path(arch).exists():
            sections.append(f"## Reference run: `{arch}`\n\n*Not in the repository yet; "
                            f"`python -m cogsim.viz.gallery --only {name}` draws it once it is.*\n")
            continue
        if args.only is None or name in args.only:
            _train(arch, run_dir, args.steps)
            folder = root / name
            shutil.rmtree(folder / "figures", ignore_errors=True)
            report = make_report(run_dir, out=folder)
            report.path.unlink()  # the gallery keeps the PNGs; every run folder has its own report
            if report.failures:
                print(f"gallery: {name}: " + "; ".join(report.failures), file=sys.stderr)
            cache = {"figures": [[f.path.as_posix(), f.title, f.caption] for f in report.figures],
                     "summary": report.summary, "steps": args.steps}
            (folder / "figures.json").write_text(json.dumps(cache, indent=1))
        cache_file = root / name / "figures.json"
        if not cache_file.exists():
            sections.append(f"## Reference run: `{arch}`\n\n*Not drawn yet: "
                            f"`python -m cogsim.viz.gallery --only {name}`.*\n")
            continue
        cached = json.loads(cache_file.read_text())
        figures = [Figure(Path(p), t, c) for p, t, c in cached["figures"]]
        sections.append(_run_section(name, arch, run_dir, cached["steps"], figures, cached["summary"], root))
        used_steps.append(cached["steps"])
    sections.append(_ablation_section(root))
    common = args.steps or (used_steps[0] if used_steps and len(set(used_steps)) == 1 else None)
    steps = f" --steps {common}" if common else ""
    (root / "README.md").write_text(HEADER.format(steps=steps) + "\n" + "\n".join(sections))
    print(f"gallery: {root / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
