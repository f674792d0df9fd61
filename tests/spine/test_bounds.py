"""Parameter bounds: declared on the field, checked in one place (cogsim.bounds), reported at the
line of the field the user wrote."""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

import pytest

from cogsim.bounds import Annotated, Checked, Count, FieldError, Range, Unit, violation
from cogsim.anomaly.detector import DetectorConfig
from cogsim.cli import main
from cogsim.data.synthetic import TASKS
from cogsim.registry import BUILTINS, registry
from cogsim.settings import DataSettings, ModelSettings, TrainSettings


@pytest.mark.parametrize("bound,text,inside,outside", [
    (Range(ge=1), "≥ 1", [1, 7], [0, -3]),
    (Range(gt=0), "> 0", [1e-9, 3.0], [0.0, -1.0, math.nan]),
    (Range(ge=0, le=1), "in [0, 1]", [0.0, 1.0, 0.5], [1.01, -0.1]),
    (Range(ge=0, lt=1), "in [0, 1)", [0.0, 0.99], [1.0]),
    (Range(gt=0, lt=50, note="percent"), "in (0, 50) (percent)", [0.1, 49.9], [0.0, 50.0]),
    (Range(le=2.5), "≤ 2.5", [2.5, -10], [2.6]),
])
def test_a_range_says_what_it_holds(bound, text, inside, outside):
    assert str(bound) == text
    assert all(bound.holds(v) for v in inside)
    assert not any(bound.holds(v) for v in outside)


def test_bounds_apply_through_optional_lists_and_unions():
    Index = Annotated[int, Range(ge=0)]
    assert violation(Count | None, None) is None
    assert violation(Count | None, 0) == "must be ≥ 1, got 0"
    assert violation(list[Annotated[int, Range(ge=2)]] | None, [5, 1]) == "every item must be ≥ 2, got 1"
    assert violation(list[Index | str] | Index | str, "htm") is None
    assert violation(list[Index | str] | Index | str, ["htm", -1]) == "every item must be ≥ 0, got -1"
    assert violation(list[Index | str] | Index | str, -2) == "must be ≥ 0, got -2"
    assert violation(Unit, True) is None  # not a number here: the type check reports it, not the bound


@dataclass
class Pair(Checked):
    low: Count = 1
    high: Annotated[float, Range(le=10)] = 2.0

    def check(self) -> None:
        if self.high < self.low:
            raise FieldError("high", f"must be ≥ low ({self.low}), got {self.high}")


def test_a_checked_record_rejects_a_bound_then_a_rule_joining_fields():
    assert Pair(3, 4.0).high == 4.0
    with pytest.raises(FieldError, match=r"^low: must be ≥ 1, got 0$") as err:
        Pair(0)
    assert err.value.field == "low"
    with pytest.raises(FieldError, match=r"^high: must be ≤ 10, got 11.0$"):
        Pair(1, 11.0)
    with pytest.raises(FieldError, match=r"^high: must be ≥ low \(3\), got 2.0$"):
        Pair(3, 2.0)


def test_a_field_error_survives_pickling_with_its_field():
    from cogsim.engram.hashing import EngramConfigError
    from cogsim.errors import CogsimError

    for error in (FieldError("low", "must be ≥ 1, got 0"), EngramConfigError("pad_id", "must be in [0, 5), got 9")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and back.field == error.field and str(back) == str(error)
    assert isinstance(back, CogsimError)


RECORDS = ([registry.get(name).Params for name in sorted(BUILTINS)] + [t.Params for t in TASKS.values()]
           + [ModelSettings, TrainSettings, DataSettings, DetectorConfig])


@pytest.mark.parametrize("record", RECORDS, ids=lambda c: c.__name__)
def test_every_parameter_record_declares_its_bounds(record):
    """No parameter record checks values by hand: bounds sit on the fields, rules in check()."""
    assert issubclass(record, Checked)
    assert "__post_init__" not in vars(record)


HEADER = "model:\n  d_model: 32\n  n_heads: 2\n  seq_len: 16\n  vocab_size: 300\n"


@pytest.mark.parametrize("text,line,message", [
    (HEADER.replace("n_heads: 2", "n_heads: 3"), 3,
     "model: parameter 'n_heads': d_model (32) must be divisible by n_heads (3)"),
    (HEADER.replace("seq_len: 16", "seq_len: 16\n  cycles: 65"), 5, "model: parameter 'cycles': must be in [1, 64], got 65"),
    (HEADER + "train:\n  steps: 2\n  lr: 0\n", 8, "train: parameter 'lr': must be > 0, got 0.0"),
    (HEADER + "nodes:\n  b:\n    type: block\n    dropout: 1.0\n", 9, "node 'b': parameter 'dropout': must be in [0, 1), got 1.0"),
    (HEADER + "nodes:\n  b:\n    type: block\n    n_heads: 5\n", 9,
     "node 'b': parameter 'n_heads': d_model 32 must split into 5 heads of even size"),
    (HEADER + "nodes:\n  e:\n    type: engram\n    engram_vocab_size:\n      - 101\n      - 1\n", 9,
     "node 'e': parameter 'engram_vocab_size': every item must be ≥ 2, got 1"),
    (HEADER + "nodes:\n  h:\n    type: htm\n    min_threshold: 9\n", 9,
     "node 'h': parameter 'min_threshold': must be ≤ activation_threshold (8), got 9"),
    (HEADER + "nodes:\n  e:\n    type: engram\n    branches: 3\n", 9,
     "node 'e': parameter 'branches': d_model 32 is not divisible by 3 branches"),
    (HEADER + "data:\n  task: mqar\n  pairs: 3\n  gap: 0\n", 9,
     "data (task mqar): parameter 'gap': must be ≥ 1, got 0"),
    (HEADER + "data:\n  task: mqar\n  seq_len: 8\n", 8,
     "data (task mqar): parameter 'seq_len': seq_len 8 is too short for 4 pairs at gap 32: it needs ≥ 3·pairs + gap − 1 = 43"),
])
def test_check_points_at_the_line_of_the_field(write_arch, capsys, text, line, message):
    text += "" if "nodes:" in text else "nodes:\n  b: {type: block}\n"
    node = text.split("nodes:\n  ")[1].split(":")[0]
    path = write_arch(text + f"  embed: {{type: embedding}}\n  head: {{type: lm_head}}\nstack: [embed, {node}, head]\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"cogsim check: error: {path}:{line}: {message}\n"
