"""Evaluation of trained models: validation loss and bits per byte, probes, statistics."""
