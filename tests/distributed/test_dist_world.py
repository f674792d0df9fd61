"""Barriers between ranks (torchrun, gloo): while rank 0 does one-off work longer than the
process-group timeout (the tokenizer on a large corpus), the others wait for it on the patient
group instead of reporting a lost rank; a plain barrier still times out (checks in barrier_ranks.py)."""
from __future__ import annotations

from pathlib import Path

from launch import torchrun

WORKER = str(Path(__file__).with_name("barrier_ranks.py"))


def test_patient_barrier_outwaits_the_hang_timeout_a_plain_one_does_not():
    proc = torchrun(WORKER)
    out = proc.stdout
    assert "rank 0: patient barrier ok" in out and "rank 1: patient barrier ok" in out, proc.stderr[-3000:]
    assert "rank 1: plain barrier failed" in out, out + proc.stderr[-3000:]
