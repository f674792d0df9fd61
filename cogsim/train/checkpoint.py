"""Checkpoints: weights and optimizer state in safetensors plus a JSON record, written atomically.

A checkpoint is a folder ``checkpoint/`` holding ``model.safetensors`` (the model's state dict,
including non-parameter state such as HTM synapses), ``optimizer.safetensors`` (AdamW moments, the
components' sparse optimizer state, RNG states) and ``state.json`` (step, config, metrics). It is
first written to ``checkpoint.new/`` and then swapped in by renames, so an interruption at any point
leaves the previous checkpoint readable. Loading reads tensors only (no pickle).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cogsim.errors import CogsimError

NAME = "checkpoint"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous, unshared CPU copies (safetensors refuses aliased storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"adamw.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("adamw."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    current = opt.state_dict()
    opt.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def save(run_dir: Path, model_state: dict[str, torch.Tensor], extra: dict[str, torch.Tensor],
         record: dict[str, Any]) -> Path:
    """Write a checkpoint into ``run_dir/checkpoint`` atomically; returns its path."""
    final, new, old = run_dir / NAME, run_dir / f"{NAME}.new", run_dir / f"{NAME}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_file(_tensors(model_state), str(new / "model.safetensors"))
    save_file(_tensors(extra), str(new / "optimizer.safetensors"))
    (new / "state.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    for f in new.iterdir():  # make the bytes durable before the swap
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in ``run_dir`` (falls back to one left mid-swap)."""
    for name in (NAME, f"{NAME}.old"):
        folder = run_dir / name
        if (folder / "state.json").exists():
            return folder
    return None


def load(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    try:
        record = json.loads((folder / "state.json").read_text())
        return load_file(str(folder / "model.safetensors")), load_file(str(folder / "optimizer.safetensors")), record
    except (OSError, ValueError) as e:
        raise CogsimError(f"{folder}: unreadable checkpoint ({e})") from None


def restore_model(model: torch.nn.Module, model_state: dict[str, torch.Tensor],
                  extra: dict[str, torch.Tensor]) -> None:
    """Load weights, non-parameter state and each component's sparse state into ``model``."""
    model.load_state_dict(model_state)
    for name, comp in model.components():
        prefix = f"sparse.{name}."
        part = {k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)}
        if part:
            comp.load_sparse_state_dict(part)
