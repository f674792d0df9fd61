"""Binary garbage where a text file belongs gives one line and exit status 2, never a traceback.

(``main`` is what the console script runs; an exception it does not turn into a message would
escape these tests.)"""
from __future__ import annotations

import pytest

from cogsim.cli import main

GARBAGE = b"\x00\x01\x02"


def cogsim(capsys, *args) -> tuple[int, str]:
    """Exit status and stderr of one command (main() is what the console script runs)."""
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", [["check"], ["graph"], ["ablate", "--quiet"]])
def test_binary_architecture_file(command, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(GARBAGE)
    code, err = cogsim(capsys, *command[:1], str(bad), *command[1:])
    assert code == 2 and err.count("\n") == 1
    assert f"{bad}:1: not a YAML text file: unexpected control character #x0000" in err


def test_control_character_line_is_reported(write_arch):
    from cogsim.errors import SpecError
    from cogsim.graph.yamlio import load_yaml

    path = write_arch("name: x\nmodel: {}\nnodes: \x07\n")
    with pytest.raises(SpecError, match=r":3: not a YAML text file: unexpected control character #x0007"):
        load_yaml(path)


def test_binary_csv_and_labels(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_bytes(GARBAGE)
    code, err = cogsim(capsys, "anomaly", str(csv), "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and err.count("\n") == 1 and str(csv) in err
    good = tmp_path / "good.csv"
    good.write_text("timestamp,value\n2020-01-01 00:00:00,1\n")
    labels = tmp_path / "labels.json"
    labels.write_bytes(GARBAGE + b"\xff")
    code, err = cogsim(capsys, "anomaly", str(good), "--out", str(tmp_path / "o"), "--labels", str(labels), "--quiet")
    assert code == 2 and err == f"cogsim anomaly: error: {labels}: not a JSON text file\n"
