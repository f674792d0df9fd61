"""Run by torchrun (2 ranks, gloo) from test_dist_world.py: the default group's hang timeout is cut
to one second once the ranks have joined, and rank 0 then takes three seconds before it reaches
each barrier. The patient barrier (rank 0's one-off work, such as training the tokenizer) waits
for it; the plain one gives up (its hang detection)."""
from __future__ import annotations

import time
from datetime import timedelta

import torch
from torch.distributed.distributed_c10d import _set_pg_timeout

from cogsim.train.distributed import join

TIMEOUT, DELAY = 1.0, 3.0

if __name__ == "__main__":
    world, _ = join(torch.device("cpu"))
    world.barrier()
    _set_pg_timeout(timedelta(seconds=TIMEOUT))
    if world.main:
        time.sleep(DELAY)
    world.barrier(patient=True)
    print(f"rank {world.rank}: patient barrier ok", flush=True)
    if world.main:
        time.sleep(DELAY)
    try:
        world.barrier()
        print(f"rank {world.rank}: plain barrier ok", flush=True)
    except Exception as e:  # noqa: BLE001 - gloo reports the timeout as a RuntimeError or DistError
        print(f"rank {world.rank}: plain barrier failed: {type(e).__name__}", flush=True)
