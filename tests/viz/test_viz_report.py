"""`cogsim run` writes figures and a self-contained report; `cogsim viz` redraws them for a run
folder; a figure that fails loses nothing else; only the figures that apply are drawn."""
from __future__ import annotations

import base64
import io
import logging
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from cogsim.cli import main

ARCH = """\
name: tiny_viz
description: tiny model with every memory system
model: {d_model: 32, n_heads: 2, seq_len: 40, vocab_size: 300}
train: {steps: 4, batch_size: 2, lr: 0.003, warmup: 1, eval_every: 4, eval_batches: 1, checkpoint_every: 4, log_every: 1}
data: {probe_count: 2}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  engram: {type: engram, max_ngram_size: 3, n_head_per_ngram: 2, n_embed_per_ngram: 16, branches: 2}
  snn: {type: snn, mode: sequence, neurons: 24, steps: 3}
  htm: {type: htm, columns: 128, cells_per_column: 4, active_columns: 8, streams: 2, learn: always}
  ws: {type: workspace, slots: 3, top_k: 1, chunk: 4}
  head: {type: lm_head}
stack: [embed, block1, engram, snn, ws, head]
edges:
  - tokens -> engram.ids
  - tokens -> htm.ids
  - block1.delta -> ws.candidates
  - engram.delta -> ws.candidates
  - snn.delta -> ws.candidates
  - htm.out -> ws.candidates
  - htm.anomaly -> ws.salience
"""
EXPECTED = {"graph.png", "curves.png", "workspace_ws.png", "engram_gate.png", "engram_gate_text.png",
            "spikes_snn.png", "htm_htm.png"}


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs and tag in ("link", "script", "iframe"):
                self.links.append(attrs[key])


def report_images(path: Path) -> list[Image.Image]:
    page = path.read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(page)
    assert not parser.links, f"external resources: {parser.links}"
    assert not re.search(r"https?://", page), "the report must not reference anything online"
    images = []
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(data)).verify()
        images.append(Image.open(io.BytesIO(data)))
    return images


@pytest.fixture(scope="module")
def run_dir(tiny_corpus, tmp_path_factory):
    """One tiny training run through the CLI (which draws the figures and report at the end)."""
    out = tmp_path_factory.mktemp("vizrun") / "run"
    arch = out.parent / "tiny_viz.yaml"
    arch.write_text(ARCH)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COGSIM_CACHE", str(tmp_path_factory.getbasetemp() / "cogsim-cache"))
        assert main(["run", str(arch), "--data", str(tiny_corpus), "--out", str(out), "--quiet"]) == 0
    return out


def test_run_writes_every_figure_and_a_self_contained_report(run_dir):
    written = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert written == EXPECTED
    images = report_images(run_dir / "report.html")
    assert len(images) == len(EXPECTED)
    for img in images:
        assert img.width >= 400 and img.height >= 150
        assert len(img.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 20  # not a blank canvas
    page = (run_dir / "report.html").read_text()
    for text in ("Run summary", "validation bits/byte", "Workspace competition (ws)", "Engram gate per token",
                 "Spike raster (snn)", "HTM prediction and anomaly (htm)", "Training curves", "Architecture graph",
                 "Probe texts", "Probe tasks", "vartrack"):
        assert text in page
    assert "Figures not drawn" not in page


def test_viz_command_with_own_text(run_dir, tmp_path, capsys):
    text = "def answer():\n    return 42  # <the answer>\n"
    assert main(["viz", str(run_dir), "--out", str(tmp_path), "--text", text]) == 0
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} == EXPECTED
    page = (tmp_path / "report.html").read_text()
    assert "return 42  # &lt;the answer&gt;" in page  # the probe text, escaped
    assert len(report_images(tmp_path / "report.html")) == len(EXPECTED)
    assert "report:" in capsys.readouterr().out


def test_a_failing_figure_loses_nothing_else(run_dir, tmp_path, monkeypatch, caplog):
    from cogsim.viz import figures
    from cogsim.viz.report import write_report

    def broken(ctx):
        raise RuntimeError("simulated failure\nsecond line")

    monkeypatch.setattr(figures, "BUILDERS", [("architecture graph", figures.graph_figure), ("spike raster", broken),
                                              ("training curves", figures.curves_figure)])
    with caplog.at_level(logging.WARNING, logger="cogsim.viz"):
        report = write_report(run_dir, out=tmp_path, text="x = 1\n")
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} == {"graph.png", "curves.png"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "spike raster figure: RuntimeError: simulated failure" in warnings[0]
    assert "\n" not in warnings[0]
    page = report.read_text()
    assert "Figures not drawn" in page and "simulated failure" in page
    assert len(report_images(report)) == 2


def test_only_the_figures_that_apply(run_dir, tmp_path, write_arch):
    """A plain transformer gets the graph and its curves, no memory-system figures."""
    import cogsim
    from cogsim.viz.report import write_report

    arch = write_arch("name: plain\nmodel: {d_model: 32, n_heads: 2, seq_len: 24, vocab_size: 300}\n"
                      "nodes: {embed: {type: embedding}, block1: {type: block}, head: {type: lm_head}}\n"
                      "stack: [embed, block1, head]\n")
    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copy(run_dir / "tokenizer.json", folder / "tokenizer.json")
    shutil.copy(run_dir / "metrics.jsonl", folder / "metrics.jsonl")
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    model = cogsim.build_model(str(arch), vocab_size=vocab)
    report = write_report(folder, model=model, text="print('hello')\n")
    assert {p.name for p in (folder / "figures").glob("*.png")} == {"graph.png", "curves.png"}
    assert "No <code>summary.json</code>" in report.read_text()
    assert len(report_images(report)) == 2


def test_viz_errors_are_one_line(tmp_path, capsys):
    assert main(["viz", str(tmp_path / "missing")]) == 2
    assert main(["viz", str(tmp_path)]) == 2
    assert main(["viz", str(tmp_path), "--text", "  "]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cogsim viz: error: {tmp_path / 'missing'}: no such run folder",
                   f"cogsim viz: error: {tmp_path}: not a run folder (no config.yaml)",
                   "cogsim viz: error: --text: the probe text is empty"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
                    (run_dir / "report.html").resolve().as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2400)
    # the embedded figures were decoded and painted: saturated colours (plots), not only text
    colourful = sum(n for n, (r, g, b) in img.getcolors(1 << 22) if max(r, g, b) - min(r, g, b) > 60)
    assert colourful > 20_000



def test_gallery_readme_links_every_figure(run_dir, tmp_path, monkeypatch):
    from cogsim.viz import gallery

    monkeypatch.setattr(gallery, "REFERENCE_RUNS", [(run_dir.name, str(run_dir.parent / "tiny_viz.yaml")),
                                                    ("later", str(tmp_path / "later.yaml"))])
    monkeypatch.setattr(gallery, "ABLATION_RESULTS", str(tmp_path / "no-ablation"))
    out = tmp_path / "viz"
    assert gallery.main(["--runs", str(run_dir.parent), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert {Path(link).name for link in links} == EXPECTED
    assert all((out / link).is_file() for link in links)
    assert f"python -m cogsim viz {run_dir.as_posix()} --out viz/{run_dir.name}" in readme
    assert "python -m cogsim ablate --suite experiments/memory_ablations.yaml" in readme
    assert "Not generated yet" in readme
    assert f"## Reference run: `{tmp_path / 'later.yaml'}`\n\n*Not in the repository yet" in readme
    assert not (out / run_dir.name / "report.html").exists()
    # redoing one section keeps the others from their cached figure lists
    assert gallery.main(["--runs", str(run_dir.parent), "--out", str(out), "--only", "ablation"]) == 0
    assert (out / "README.md").read_text() == readme
