"""Probe tasks: deterministic texts whose answers are right (checked by running the Python they
are written in), held-out probe instances, sizing to a context, and the scoring rules."""
from __future__ import annotations

import math

import pytest
import torch

from cogsim.data import tasks
from cogsim.evaluate.probes import exact_matches, span_scores, surprisal


def _run(text: str) -> dict:
    env = {"items": [], "buffer": [], "log": type("L", (), {"debug": staticmethod(lambda m: None)})(),
           "total": 0, "count": 0, "flag": True, "value": 0, "step": 1, "pos": 0, "msg": ""}
    exec(text, env)  # the generated texts are valid Python; asserts check the needle answers
    return env


@pytest.mark.parametrize("task", tasks.TASKS)
def test_same_seed_same_text_other_seed_other_text(task):
    level = tasks.STANDARD[task]
    a = tasks.instances(task, level, 6, seed=3)
    b = tasks.instances(task, level, 6, seed=3)
    c = tasks.instances(task, level, 6, seed=4)
    assert a == b
    assert [x.text for x in a] != [x.text for x in c]
    assert len({x.text for x in a}) == 6


def test_recall_asks_the_fixed_facts_not_shown_in_the_prompt():
    world = {f.name: f.value for f in tasks.facts()}
    assert len(world) == tasks.N_FACTS and tasks.facts() == tasks.facts()
    insts = tasks.instances("recall", 6, tasks.N_FACTS, seed=0)
    asked = set()
    for inst in insts:
        (a, b), = inst.spans
        prompt = inst.text[:a]
        name = prompt.splitlines()[-1].split(" =")[0]
        asked.add(name)
        assert inst.text[a:b] == f" {world[name]}"
        assert prompt.count(name) == 1  # the asked fact appears only as the question
        env = _run(inst.text)
        for line in prompt.splitlines()[1:-1]:  # context lines are facts of the same world
            key = line.split(" = ")[0]
            assert env[key] == world[key]
    assert asked == set(world)  # N_FACTS consecutive probes ask every fact once


def test_needle_answers_are_the_values_in_context():
    for inst in tasks.instances("needle", (4, 1, 2), 20, seed=1):
        env = _run(inst.text)  # every `assert table[...] == value` holds
        queries = [line for line in inst.text.splitlines() if line.startswith("assert")]
        assert len(inst.spans) == len(queries) == 2
        for (a, b), line in zip(inst.spans, queries):
            key = line.split('"')[1]
            assert int(inst.text[a:b]) == env["table"][key]
            assert inst.text[:a].count(f'table["{key}"] = {env["table"][key]}') == 1


def test_vartrack_answer_is_the_value_reached_by_the_chain():
    for inst in tasks.instances("vartrack", (3, 2), 20, seed=2):
        (a, b), = inst.spans
        head, _, _ = inst.text.rpartition("assert ")
        var = inst.text.splitlines()[-1].split()[1]
        env = _run(head)
        assert env[var] == int(inst.text[a:b])
        values = [int(line.split(" = ")[1]) for line in head.splitlines() if line.split(" = ")[1].isdigit()]
        assert len(values) == 3 and len(set(values)) == 3  # one asked chain, two distractors
        _run(inst.text)


def test_anomaly_labels_mark_words_outside_the_pattern():
    for inst in tasks.instances("anomaly", 48, 20, seed=5):
        words = inst.text[1:].split()
        assert len(words) == 48
        scored = [inst.text[a:b].strip() for a, b in inst.spans]
        first = 48 - len(scored)
        period = next(p for p in (3, 4, 5) if words[p] == words[0] and words[:p] == words[p : 2 * p])
        pattern = words[:period]
        assert first == max(2 * period, 16) and words[:first] == (pattern * 16)[:first]
        assert len(set(pattern)) == period
        assert sum(inst.labels) == 2  # 48 // 24
        for i, (word, label) in enumerate(zip(scored, inst.labels)):
            expected = pattern[(first + i) % len(pattern)]
            assert (word != expected) == bool(label)
            if label:
                assert word not in pattern
        assert all(not (x and y) for x, y in zip(inst.labels, inst.labels[1:]))


def test_probe_instances_are_held_out_from_training_documents():
    count_chars = lambda texts: [len(t) // 3 for t in texts]  # a rough token count is enough here
    train = {d.text for d in tasks.training_documents(count_chars, 128, 400, seed=0)}
    assert {d.task for d in tasks.training_documents(count_chars, 128, 8, seed=0)} == set(tasks.TASKS)
    for task in ("needle", "vartrack", "anomaly"):
        probes = tasks.instances(task, tasks.STANDARD[task], 32, seed=0)
        assert not train & {p.text for p in probes}
    recall_lines = {line for t in train if t.startswith("# settings") for line in t.splitlines()[1:]}
    assert {f.line().strip() for f in tasks.facts()} <= recall_lines  # the facts recall asks are trained on


def test_fit_level_shrinks_to_the_context_and_says_none_when_nothing_fits():
    count_chars = lambda texts: [len(t) for t in texts]
    assert tasks.fit_level("needle", count_chars, 10_000) == tasks.STANDARD["needle"]
    assert tasks.fit_level("needle", count_chars, 10_000, largest=None) == tasks.LEVELS["needle"][0]
    small = tasks.fit_level("needle", count_chars, 120)
    assert small in tasks.LEVELS["needle"] and small[0] < tasks.STANDARD["needle"][0]
    assert all(len(i.text) <= 120 for i in tasks.instances("needle", small, 32))
    assert tasks.fit_level("needle", count_chars, 5) is None
    with pytest.raises(ValueError, match="task: unknown task"):
        tasks.generate("sorting", 1, 0, 0)


def test_teacher_forced_exact_match_equals_greedy_decoding():
    torch.manual_seed(0)
    logits = torch.randn(12, 7)
    logp = torch.log_softmax(logits, -1)
    greedy = logp.argmax(-1).tolist()
    ids = [0] + greedy[:11]  # every token is the argmax after its prefix
    assert exact_matches(logp, ids, [[3, 4], [11]]) == [True, True]
    ids[4] = (ids[4] + 1) % 7  # one wrong answer token fails its whole span
    assert exact_matches(logp, ids, [[3, 4], [11], [1]]) == [False, True, True]


def test_surprisal_and_span_scores():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]))
    s = surprisal(logp, [0, 1, 0])
    assert s[0] == 0 and math.isclose(float(s[1]), -math.log(0.5), rel_tol=1e-6)
    assert math.isclose(float(s[2]), -math.log(0.25), rel_tol=1e-6)
    assert span_scores(torch.tensor([0.1, 0.7, 0.3, 0.2]), [[0, 1], [2, 3]]) == pytest.approx([0.7, 0.3])
