"""``cogsim nab``: a small NAB-shaped checkout made here (no NAB data), NAB's results layout, the
three profile scores, out-of-sample folds, and what happens to odd rows, bad files and bad input."""
import csv
import json

import numpy as np
import pytest

from cogsim.anomaly.nab import held_out_scores, load_windows, score_corpus
from cogsim.cli import main

SMALL = ["--set", "columns=256", "--set", "active_columns=12", "--set", "cells_per_column=8",
         "--set", "activation_threshold=6", "--set", "min_threshold=4", "--set", "max_new_synapse_count=10",
         "--quiet"]
ROWS = 240
FILES = ["catA/a_one.csv", "catA/a_two.csv", "catB/b_one.csv", "catB/b_two.csv"]  # sorted: folds a_one,b_one | a_two,b_two


def stamp(t) -> str:
    return str(t).replace("T", " ")


def make_checkout(root, backwards_in=None, bad=False):
    """Four series of a repeating pattern, each with a level jump inside its one labelled window; the
    odd-numbered files also have a spike before it (a false positive), so the two folds score apart."""
    ts = np.datetime64("2020-01-01T00:00", "s") + np.arange(ROWS) * np.timedelta64(300, "s")
    windows, lines_of = {}, {}
    for k, name in enumerate(FILES):
        values = np.tile([1.0, 3.0, 5.0, 3.0], ROWS // 4)
        jump = 150 + 15 * k
        values[jump:] += 120.0
        if k % 2:
            values[100] += 60.0
        stamps = [stamp(t) for t in ts]
        if name == backwards_in:
            stamps[60] = stamp(ts[55])  # row 61 of the data, line 62 of the file: back in time
        lines_of[name] = ["timestamp,value"] + [f"{s},{v}" for s, v in zip(stamps, values)]
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines_of[name]) + "\n")
        windows[name] = [[stamp(ts[jump - 10]) + ".000000", stamp(ts[jump + 10]) + ".000000"]]
    if bad:
        (root / "data" / "catB" / "broken.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,x\n")
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=1))
    return lines_of


def read_result(path):
    with path.open() as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_nab_writes_nab_layout_and_scores_like_the_scorer(tmp_path, capsys):
    lines_of = make_checkout(tmp_path / "nab", backwards_in="catA/a_two.csv", bad=True)
    out = tmp_path / "results"
    assert main(["nab", str(tmp_path / "nab"), "--out", str(out), *SMALL]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2
    assert any("a_two.csv:62: timestamp: '2020-01-01 04:35:00' is earlier than the row before" in w for w in warnings)
    assert any("broken.csv:3: value: cannot parse 'x'" in w and "skipped" in w for w in warnings)

    windows = load_windows(tmp_path / "nab" / "labels" / "combined_windows.json")
    results = {}
    for name in FILES:
        category, file = name.split("/")
        header, rows = read_result(out / "cogsim" / category / f"cogsim_{file}")
        assert header == ["timestamp", "value", "anomaly_score", "raw_score", "label"]
        source = [line.split(",") for line in lines_of[name][1:]]
        assert [r[0] for r in rows] == [s[0] for s in source]  # file order, the odd row where it was
        assert [float(r[1]) for r in rows] == [float(s[1]) for s in source]
        jump = 150 + 15 * FILES.index(name)
        assert [int(r[4]) for r in rows] == [int(jump - 10 <= i <= jump + 10) for i in range(ROWS)]
        assert all(0.0 <= float(r[3]) <= 1.0 for r in rows)  # the TM's raw anomaly
        scores = np.array([float(r[2]) for r in rows])
        assert np.all((scores >= 0) & (scores <= 1)) and scores[jump] == 1.0  # the jump leaves the range seen
        ts = np.array([np.datetime64(r[0].replace(" ", "T")) for r in rows])
        results[name] = (ts, scores)
    assert not (out / "cogsim" / "catB" / "cogsim_broken.csv").exists()

    printed = captured.out.splitlines()
    assert "scored 4 files, 960 rows" in printed[0]
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        line = next(p for p in printed if p.startswith(f"NAB {profile}: "))
        expected = score_corpus(results, windows, profile=profile)  # from the files NAB would read
        assert float(line.split()[2]) == pytest.approx(expected.score, abs=0.006)
        held = next(p for p in printed if p.startswith(f"  out of sample ({profile}):"))
        on_even, on_odd = held_out_scores(results, windows, [FILES[0::2], FILES[1::2]], profile)
        numbers = [float(w.rstrip(",")) for w in held.split() if w.rstrip(",").replace(".", "").lstrip("-").isdigit()]
        assert numbers == pytest.approx([on_odd.score, on_even.score, (on_odd.score + on_even.score) / 2], abs=0.006)
        assert on_odd.score < on_even.score  # the false positives are in the odd-numbered files
    summary = json.loads((out / "cogsim" / "summary.json").read_text())
    assert summary["files"] == 4 and summary["skipped"] == ["catB/broken.csv"] and summary["rows"] == 960
    assert summary["profiles"]["standard"]["score"] == pytest.approx(score_corpus(results, windows).score)
    assert summary["config"]["columns"] == 256
    in_fold = summary["profiles"]["standard"]["in_fold"]  # each fold with its own best threshold
    for key, fold in (("even", FILES[0::2]), ("odd", FILES[1::2])):
        assert in_fold[key] == pytest.approx(score_corpus({n: results[n] for n in fold}, windows).score, abs=1e-6)


@pytest.mark.parametrize("case, args, message", [
    ("missing", [], "no such folder"),
    ("no_data", [], "no data/ folder"),
    ("no_labels", [], "combined_windows.json: labels file not found"),
    ("bad_labels", [], "combined_windows.json:1: not valid JSON"),
    ("ok", ["--detector", "my_detector"], "--detector: 'my_detector'"),
    ("ok", ["--set", "columns=0"], "parameter 'columns': must be ≥ 1"),
    ("all_bad", [], "broken.csv:3: value: cannot parse 'x'"),
])
def test_nab_bad_input_is_one_line_exit_2(tmp_path, capsys, case, args, message):
    root = tmp_path / "nab"
    if case != "missing":
        root.mkdir()
    if case in ("no_labels", "bad_labels", "ok", "all_bad"):
        (root / "data" / "catB").mkdir(parents=True)
        (root / "data" / "catB" / "broken.csv").write_text(
            "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,x\n" if case == "all_bad"
            else "timestamp,value\n2020-01-01 00:00:00,1\n")
    if case in ("bad_labels", "ok", "all_bad"):
        (root / "labels").mkdir()
        (root / "labels" / "combined_windows.json").write_text("{oops" if case == "bad_labels" else "{}")
    assert main(["nab", str(root), "--out", str(tmp_path / "out"), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err
