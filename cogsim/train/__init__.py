"""Training: the loop, the learning-rate schedule and checkpoints (docs/design.md §8)."""
