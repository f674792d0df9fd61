"""``cogsim anomaly``: CSVs in, scored CSVs out, NAB score with labels, one-line errors."""
import json

import numpy as np

from cogsim.cli import main


SMALL = ["--set", "columns=256", "--set", "active_columns=12", "--set", "cells_per_column=8",
         "--set", "activation_threshold=6", "--set", "min_threshold=4", "--set", "max_new_synapse_count=10"]


def write_csv(path, n, start="2020-01-01 00:00:00", jump_at=None):
    ts = np.datetime64(start.replace(" ", "T"), "s") + np.arange(n) * np.timedelta64(300, "s")
    v = np.tile([1.0, 3.0, 5.0, 3.0], n // 4 + 1)[:n]
    if jump_at is not None:
        v[jump_at:] += 50.0
    lines = ["timestamp,value"] + [f"{str(t).replace('T', ' ')},{x}" for t, x in zip(ts, v)]
    path.write_text("\n".join(lines) + "\n")
    return ts


def test_cli_writes_scores_and_nab_summary(tmp_path, capsys):
    a, b = tmp_path / "in" / "a.csv", tmp_path / "in" / "b.csv"
    a.parent.mkdir()
    ts = write_csv(a, 200, jump_at=170)
    write_csv(b, 120)
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({"x/a.csv": [[str(ts[160]).replace("T", " "), str(ts[180]).replace("T", " ")]],
                                  "x/b.csv": []}))
    out = tmp_path / "out"
    rc = main(["anomaly", str(a), str(b), "--out", str(out), "--labels", str(labels), "--quiet",
               "--profile", "standard", *SMALL])
    assert rc == 0
    lines = (out / "a.csv").read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score" and len(lines) == 201
    assert lines[1].startswith("2020-01-01 00:00:00,1.0,")
    scores = np.array([float(r.split(",")[2]) for r in lines[1:]])
    assert scores[170] == 1.0  # the jump leaves the range seen so far
    assert np.all((scores >= 0) & (scores <= 1))
    assert len((out / "b.csv").read_text().splitlines()) == 121
    printed = capsys.readouterr().out
    assert "scored 2 series, 320 rows" in printed
    nab = [line for line in printed.splitlines() if line.startswith("NAB standard: ")]
    assert len(nab) == 1 and float(nab[0].split()[2]) > 50  # the jump, mid-window, is detected


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,x\n")
    assert main(["anomaly", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}:3: value: cannot parse 'x'" in err
    assert main(["anomaly", str(bad), "--out", str(tmp_path), "--set", "nope=1", "--quiet"]) == 2
    assert "--set nope=1" in capsys.readouterr().err


def test_cli_skips_an_unreadable_file_and_scores_the_others(tmp_path, capsys):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    write_csv(good, 80)
    bad.write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,x\n")
    out = tmp_path / "o"
    assert main(["anomaly", str(bad), str(good), "--out", str(out), "--quiet", *SMALL]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"warning: {bad}:3: value: cannot parse 'x' as a number (file skipped)"
    assert "scored 1 series, 80 rows" in captured.out
    assert len((out / "good.csv").read_text().splitlines()) == 81 and not (out / "bad.csv").exists()
    other = tmp_path / "bad2.csv"
    other.write_text("nothing here\n")
    assert main(["anomaly", str(bad), str(other), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[-1].endswith("none of the 2 input files could be read")
