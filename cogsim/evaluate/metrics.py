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


def eval_batches(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 device: torch.device):
    """(x, y) on ``device``, ``batch_size`` rows at a time, with the model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(inputs), batch_size):
            yield inputs[i : i + batch_size].to(device), targets[i : i + batch_size].to(device)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, token_bytes: np.ndarray,
             batch_size: int, device: torch.device, autocast: bool = False) -> dict[str, float]:
    """Mean token loss and bits per byte of ``targets`` given ``inputs`` (windows [N, T])."""
    total_nats, total_tokens, total_bytes = 0.0, 0, 0
    for x, y in eval_batches(model, inputs, targets, batch_size, device):
        nats, tokens, nbytes = batch_totals(model, x, y, token_bytes, autocast)
        total_nats, total_tokens, total_bytes = total_nats + nats, total_tokens + tokens, total_bytes + nbytes
    return {"val_loss": total_nats / total_tokens, "val_bpb": bits_per_byte(total_nats, total_bytes)}


def answer_hits(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> tuple[int, int]:
    """(correct, counted): argmax predictions equal to the target, at answer positions only."""
    keep = targets != ignore_index
    return int((logits.argmax(-1)[keep] == targets[keep]).sum()), int(keep.sum())


@torch.no_grad()
def answer_totals(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: bool = False,
                  ignore_index: int = -100) -> tuple[float, int, int]:
    """Summed answer loss (nats), correct answers and answers of one batch (targets other than
    ``ignore_index``)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x).float()
    nats = float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=ignore_index, reduction="sum"))
    return (nats, *answer_hits(logits, y, ignore_index))


def answer_metrics(nats: float, correct: int, counted: int) -> dict[str, float]:
    """Mean answer loss and accuracy from the totals of :func:`answer_totals`."""
    if counted == 0:
        raise ValueError("no answer positions to score")
    return {"val_loss": nats / counted, "task_accuracy": correct / counted}


@torch.no_grad()
def evaluate_answers(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                     device: torch.device, autocast: bool = False, ignore_index: int = -100) -> dict[str, float]:
    """Synthetic-task validation: mean loss and accuracy over answer positions (targets other
    than ``ignore_index``); the other positions are not scored."""
    total_nats, correct, counted = 0.0, 0, 0
    for x, y in eval_batches(model, inputs, targets, batch_size, device):
        nats, hits, n = answer_totals(model, x, y, autocast, ignore_index)
        total_nats, correct, counted = total_nats + nats, correct + hits, counted + n
    return answer_metrics(total_nats, correct, counted)
