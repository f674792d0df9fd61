"""The synthetic tasks: deterministic from the seed, answers correct by construction (checked by
brute force on small cases), no answer where the input would give it away, answers-only targets."""
from __future__ import annotations

import numpy as np
import pytest

from cogsim.data.synthetic import IGNORE, TASKS, TRAIN, VALIDATION, Context, make_task
from cogsim.data.synthetic.motifs import Motifs
from cogsim.settings import DataSettings

SMALL = {
    "mqar": {"pairs": 3, "gap": 7, "vocab": 13, "seq_len": 24},
    "facts": {"n_facts": 10, "relations": 3, "objects": 5, "queries": 4, "distractors": 3, "seq_len": 20},
    "copy": {"items": 3, "delay": 6, "vocab": 5, "noise": 2, "seq_len": 20},
    "motifs": {"groups": 2, "branches": 3, "shared": 4, "noise": 2, "switch": 5, "seq_len": 30},
    "count": {"span": 6, "p": 0.3, "queries": 3, "noise": 2, "seq_len": 20},
}


def task(name: str, seed: int = 0, **changes):
    return make_task(name, TASKS[name].Params(**{**SMALL[name], **changes}), Context(64, seed, 10))


def answers(y: np.ndarray) -> list[tuple[int, int]]:
    return [(int(r), int(t)) for r, t in zip(*np.nonzero(y != IGNORE))]


def sequences(t, batches: int = 20, rows: int = 16):
    """(inputs, targets, answer positions) of every row of the first training batches."""
    for index in range(batches):
        x, y = t.batch(TRAIN, index, rows)
        for r in range(rows):
            yield x[r], y[r], [i for _, i in answers(y[r : r + 1])]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_batches_are_fixed_by_seed_stream_and_index(name):
    a, b = task(name), task(name)
    x, y = a.batch(TRAIN, 3, 8)
    x2, y2 = b.batch(TRAIN, 3, 8)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == y.shape == (8, a.seq_len) and x.dtype == y.dtype == np.int64
    assert 0 <= x.min() and x.max() < a.vocab_size and y[y != IGNORE].max() < a.vocab_size
    for other in (a.batch(TRAIN, 4, 8), a.batch(VALIDATION, 3, 8), task(name, seed=1).batch(TRAIN, 3, 8)):
        assert not np.array_equal(other[0], x)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_parameters_do_not_collide_with_data_settings(name):
    import dataclasses

    own = {f.name for f in dataclasses.fields(DataSettings)}
    assert not own & {f.name for f in dataclasses.fields(TASKS[name].Params)}
    assert TASKS[name].__doc__ or TASKS[name].__module__  # documented in the module docstring
    assert len(__import__(TASKS[name].__module__, fromlist=["x"]).__doc__) > 200


def test_mqar_answers_by_brute_force():
    t = task("mqar")
    p = t.params
    for x, y, at in sequences(t):
        asked = [(i, int(x[i])) for i in range(2 * p.pairs, t.seq_len) if x[i] != t.filler]
        assert [i for i, _ in asked] == at  # answers only at the queries
        assert sorted(k for _, k in asked) == sorted(x[0 : 2 * p.pairs : 2].tolist())  # each key once
        for i, key in asked:
            source = [j for j in range(i) if x[j] == key and j + 1 < i and j < 2 * p.pairs]
            assert len(source) == 1
            value_at = source[0] + 1
            assert y[i] == x[value_at] and i - value_at >= p.gap
            assert np.count_nonzero(x == y[i]) == 1  # the value is never shown again


def test_mqar_gap_is_the_minimum_distance_and_is_reached():
    t = task("mqar", gap=9, seq_len=40)
    x, y = t.batch(TRAIN, 0, 256)
    dist = []
    for r, i in answers(y):
        dist.append(i - int(np.nonzero(x[r] == y[r, i])[0][0]))
    assert min(dist) == 9 and max(dist) > 9


def test_facts_are_a_fixed_function_of_the_seed_asked_without_the_answer():
    t = task("facts")
    p = t.params
    seen: dict[tuple[int, int], int] = {}
    for index in range(40):
        x, y = t.batch(TRAIN, index, 8)
        objects = set(range(t.object0, t.object0 + p.objects))
        assert not objects & set(x.ravel().tolist())  # no object is ever an input
        for r in range(8):
            places = answers(y[r : r + 1])
            assert len(places) == p.queries
            facts = [(int(x[r, i - 1]), int(x[r, i])) for _, i in places]
            assert len(set(facts)) == p.queries  # distinct facts per sequence
            for fact, (_, i) in zip(facts, places):
                assert seen.setdefault(fact, int(y[r, i])) == y[r, i]  # always the same object
            subjects_relations = {i for _, j in places for i in (j - 1, j)}
            rest = [x[r, i] for i in range(t.seq_len) if i not in subjects_relations]
            assert all(t.distractor0 <= v < t.distractor0 + p.distractors for v in rest)
    assert len(seen) == p.n_facts  # every fact of the world gets asked, and no other
    assert task("facts").objects.tolist() == t.objects.tolist()
    assert task("facts", seed=5).objects.tolist() != t.objects.tolist()
    counts = np.bincount(t.objects, minlength=p.objects)
    assert t.chance == counts.max() / p.n_facts


def test_copy_answers_by_brute_force():
    t = task("copy")
    p = t.params
    for x, y, at in sequences(t):
        items = [(i, int(v)) for i, v in enumerate(x) if t.content0 <= v < t.content0 + p.vocab]
        assert len(items) == p.items and len({v for _, v in items}) == p.items
        cues = [i for i in range(t.seq_len) if x[i] >= t.cue0]
        assert cues == list(range(t.seq_len - p.items, t.seq_len)) == at
        assert [int(y[c]) for c in cues] == [v for _, v in items]
        assert cues[0] - items[-1][0] >= p.delay  # nothing to copy within the delay


@pytest.mark.parametrize("name", ["count", "facts"])
def test_answer_symbols_never_appear_in_the_input(name):
    t = task(name)
    x, y = t.batch(TRAIN, 0, 64)
    assert not set(y[y != IGNORE].tolist()) & set(x.ravel().tolist())


def test_count_answers_by_brute_force():
    t = task("count")
    p = t.params
    for x, y, at in sequences(t):
        asks = [i for i in range(t.seq_len) if x[i] == t.ask]
        assert asks == at and len(asks) == p.queries
        for i in asks:
            assert i >= p.span
            assert y[i] - t.count0 == sum(1 for j in range(i - p.span, i) if x[j] == t.marker)


def test_count_chance_is_the_most_likely_binomial_count():
    t = task("count", span=4, p=0.5)
    assert t.chance == pytest.approx(6 / 16)


def test_motifs_answers_by_brute_force_and_the_switch():
    t = task("motifs")
    p = t.params
    for step in (0, 4, 5, 9):
        x, y = t.batch(TRAIN, step, 8)
        for r in range(8):
            for _, i in answers(y[r : r + 1]):
                start = max(j for j in range(i) if t.start0 <= x[r, j] < t.middle0)
                group, branch = divmod(int(x[r, start]) - t.start0, p.branches)
                assert i - start == p.shared  # the deciding start lies `shared` positions back
                assert x[r, i] == t.middle0 + group * p.shared + p.shared - 1  # the last shared symbol
                shift = 1 if step >= p.switch else 0
                assert y[r, i] == t.end0 + group * p.branches + (branch + shift) % p.branches
                if i + 1 < t.seq_len:
                    assert x[r, i + 1] == y[r, i]  # the stream continues with the answer
                assert y[r, i] not in x[r, start + 1 : i + 1]  # not within the shared part
            lasts = [i for i in range(t.seq_len) if t.middle0 <= x[r, i] < t.end0
                     and (x[r, i] - t.middle0) % p.shared == p.shared - 1]
            assert [i for _, i in answers(y[r : r + 1])] == lasts


def test_motifs_default_switch_is_half_the_steps_and_zero_never_switches():
    params = Motifs.Params(**{**SMALL["motifs"], "switch": None})
    assert make_task("motifs", params, Context(64, 0, 300)).switch == 150
    never = task("motifs", switch=0)
    assert never.phase(0) == never.phase(10**6) == 0


def test_motifs_report_measures_recovery():
    t = task("motifs", switch=10, branches=2)  # chance 0.5
    rows = [{"step": s, "train_accuracy": a} for s, a in
            [(2, 0.5), (4, 0.7), (6, 0.9), (8, 1.0), (10, 1.0), (12, 0.0), (14, 0.4), (16, 0.8), (18, 0.96), (20, 1.0)]]
    out = t.report(rows)
    assert out["accuracy_before_switch"] == pytest.approx(1.0) and out["accuracy_after_switch"] == pytest.approx(1.0)
    assert out["recovery_steps"] == 8  # first at ≥ 0.5 + 0.9·0.5 = 0.95: step 18
    flat = [{"step": s, "train_accuracy": 0.5} for s in range(2, 21, 2)]
    assert t.report(flat)["recovery_steps"] is None  # nothing learned before the switch


@pytest.mark.parametrize("name,bad,message", [
    ("mqar", {"gap": 30}, "too short for 3 pairs at gap 30"),
    ("mqar", {"vocab": 6}, r"vocab: must be ≥ 2·pairs \+ 1"),
    ("copy", {"vocab": 2}, "must be ≥ items"),
    ("count", {"span": 19}, "too short for 3 queries"),
    ("facts", {"queries": 11}, "must be ≤ n_facts"),
    ("motifs", {"branches": 1}, "branches: must be ≥ 2"),
])
def test_impossible_parameters_are_refused(name, bad, message):
    with pytest.raises(ValueError, match=message):
        task(name, **bad)
