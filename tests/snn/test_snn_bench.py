"""``cogsim bench snn`` runs end to end on a tiny problem and appends its rows."""
from __future__ import annotations

import csv

from cogsim.cli import main


def test_bench_snn_writes_rows(tmp_path, capsys):
    out = tmp_path / "snn.csv"
    code = main(["bench", "snn", "--steps", "5", "--batch", "2", "--neurons", "16", "--repeat", "1",
                 "--paths", "native,torch,parallel,loop", "--csv", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "snntorch.Leaky loop" in text and "differ" not in text
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == ["native", "torch", "parallel", "loop"]
    assert all(float(r["ms"]) > 0 and float(r["speedup"]) > 0 for r in rows)
    assert rows[2]["reset"] == "none"


def test_bench_snn_rejects_unknown_path(tmp_path, capsys):
    assert main(["bench", "snn", "--paths", "warp", "--csv", str(tmp_path / "x.csv")]) == 2
    assert "unknown path 'warp'" in capsys.readouterr().err
