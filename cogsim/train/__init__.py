"""Training: the loop, the learning-rate schedule and checkpoints (DESIGN §8)."""
