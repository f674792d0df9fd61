"""Validation loss and bits per byte (comparable across tokenizers)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    """Bits per byte of text: summed negative log-likelihood (nats) / ln 2 / bytes covered."""
    if total_bytes <= 0:
        raise ValueError("no bytes to score")
    return total_nats / math.log(2) / total_bytes


@torch.no_grad()
def batch_totals(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, token_bytes: np.ndarray,
                 autocast: bool = False) -> tuple[float, int, int]:
    """Summed negative log-likelihood (nats), token count and byte count of one batch."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x)
    nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
    return float(nll), y.numel(), int(torch.from_numpy(token_bytes)[y.cpu()].sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, token_bytes: np.ndarray,
             batch_size: int, device: torch.device, autocast: bool = False) -> dict[str, float]:
    """Mean token loss and bits per byte of ``targets`` given ``inputs`` (windows [N, T])."""
    was_training = model.training
    model.eval()
    total_nats, total_tokens, total_bytes = 0.0, 0, 0
    try:
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i : i + batch_size].to(device), targets[i : i + batch_size].to(device)
            nats, tokens, nbytes = batch_totals(model, x, y, token_bytes, autocast)
            total_nats, total_tokens, total_bytes = total_nats + nats, total_tokens + tokens, total_bytes + nbytes
    finally:
        model.train(was_training)
    return {"val_loss": total_nats / total_tokens, "val_bpb": bits_per_byte(total_nats, total_bytes)}
