"""Text from a trained model: one token at a time, each drawn from the model's next-token
distribution over the last ``seq_len`` tokens (the context it was trained on)."""
from __future__ import annotations

import torch

from cogsim.model import CognitiveModel


@torch.no_grad()
def generate(model: CognitiveModel, prompt: list[int], tokens: int, *, temperature: float = 1.0,
             top_k: int = 0, context: int | None = None, stop: int | None = None,
             generator: torch.Generator | None = None) -> list[int]:
    """The ``tokens`` ids that follow ``prompt`` (fewer if ``stop`` is drawn; it is not returned).

    ``temperature`` 0 picks the most likely token (greedy); otherwise the logits are divided by it
    and, with ``top_k`` > 0, all but the k most likely tokens are dropped before drawing.
    ``context`` bounds the window the model sees (default: the model's ``seq_len``)."""
    if not prompt:
        raise ValueError("generate needs at least one prompt token")
    context = context or model.plan.sizes.seq_len
    device = next(model.parameters()).device
    ids = list(prompt)
    out: list[int] = []
    was_training = model.training
    model.eval()
    try:
        for _ in range(tokens):
            window = torch.tensor([ids[-context:]], dtype=torch.long, device=device)
            logits = model(window)[0, -1].float()
            if temperature == 0:
                nxt = int(logits.argmax())
            else:
                logits = logits / temperature
                if 0 < top_k < logits.numel():
                    cut = torch.topk(logits, top_k).values[-1]
                    logits = logits.masked_fill(logits < cut, float("-inf"))
                probs = torch.softmax(logits, dim=-1).cpu()
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            if nxt == stop:
                break
            ids.append(nxt)
            out.append(nxt)
    finally:
        model.train(was_training)
    return out


__all__ = ["generate"]
