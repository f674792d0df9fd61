"""``--set`` and YAML values: exponent floats are numbers, a mistyped node name is refused, and every
command reads overrides the same way."""
from __future__ import annotations

from pathlib import Path

import pytest

from cogsim.cli import main
from cogsim.commands.anomaly import parse_settings
from cogsim.errors import CogsimError, SpecError
from cogsim.graph.overrides import parse_override
from cogsim.graph.spec import read_spec
from cogsim.graph.yamlio import load_value, load_yaml


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("3E5", 3e5), ("-2.5e+2", -250.0), ("1.5e3", 1500.0),
                                         (".5e1", 5.0), ("1_000e-3", 1.0), ("0.001", 0.001), ("12", 12),
                                         ("1e", "1e"), ("e3", "e3"), ("1e-3x", "1e-3x"), ("true", True)])
def test_yaml_values_read_exponent_floats_as_numbers(text, value):
    got = load_value(text)
    assert got == value and type(got) is type(value)


def test_exponent_floats_in_a_file_and_in_set(tiny_arch):
    path = tiny_arch.with_name("exp.yaml")
    path.write_text(tiny_arch.read_text().replace("lr: 0.003", "lr: 3e-3"))
    assert load_yaml(path)["train"]["lr"] == 3e-3
    spec = read_spec(path)
    assert spec.train.lr == pytest.approx(0.003)
    spec = read_spec(path, ["train.lr=1e-4", "train.min_lr_ratio=5E-2", "nodes.block1.n_heads=1"])
    assert spec.train.lr == pytest.approx(1e-4) and spec.train.min_lr_ratio == pytest.approx(0.05)
    assert spec.nodes["block1"].params["n_heads"] == 1


def test_cli_accepts_the_readme_override(tiny_arch, capsys):
    assert main(["check", str(tiny_arch), "--set", "train.lr=1e-3"]) == 0
    assert "is valid" in capsys.readouterr().out


def test_mistyped_node_name_is_refused_with_a_suggestion(tiny_arch, capsys):
    with pytest.raises(SpecError) as info:
        read_spec(tiny_arch, ["nodes.blok1.n_heads=2"])
    assert "no node 'blok1' (did you mean 'block1'?)" in str(info.value)
    assert main(["check", str(tiny_arch), "--set", "nodes.blok1.n_heads=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no node 'blok1' (did you mean 'block1'?)" in err
    assert "missing 'type'" not in err


def test_the_engram_node_typo_from_the_issue(capsys):
    arch = Path(__file__).resolve().parents[2] / "architectures" / "engram_snn.yaml"
    assert main(["check", str(arch), "--set", "nodes.engarm.max_ngram_size=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no node 'engarm' (did you mean 'engram'?)") and "\n" not in err


def test_whole_sections_and_new_fields_can_still_be_set(tiny_arch):
    spec = read_spec(tiny_arch, ["nodes.block1={type: block, n_heads: 1}", "data.task_mix=0.25"])
    assert spec.nodes["block1"].params["n_heads"] == 1 and spec.data.task_mix == 0.25


@pytest.mark.parametrize("item", ["=3", "train.lr", "a..b=1", ".x=1"])
def test_malformed_overrides_are_one_line_errors(item):
    with pytest.raises(CogsimError) as info:
        parse_override(item)
    assert "KEY=VALUE" in str(info.value) and "\n" not in str(info.value)


def test_anomaly_set_uses_the_same_dialect():
    # the same YAML values as run --set: exponent floats, booleans, null and lists
    got = parse_settings(["num_buckets=1.3e2", "use_likelihood=false", "weekend=null", "time_of_day=[21, 9.5]",
                          "columns=256"])
    assert got == {"num_buckets": 130.0, "use_likelihood": False, "weekend": None, "time_of_day": (21, 9.5),
                   "columns": 256}
    assert isinstance(got["num_buckets"], float)


@pytest.mark.parametrize("item, message", [
    ("colums=3", "unknown setting 'colums' (did you mean 'columns'?)"),
    ("columns=x", "parameter 'columns': expected an integer, got str 'x'"),
    ("columns=0", "parameter 'columns': must be ≥ 1, got 0"),
    ("time_of_day=[1, 2, 3]", "expected a list [an integer, a number] or null"),
])
def test_anomaly_set_errors_name_the_item(item, message):
    with pytest.raises(CogsimError) as info:
        parse_settings([item])
    text = str(info.value)
    assert text.startswith(f"--set {item}") and message in text and "\n" not in text
