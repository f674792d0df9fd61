"""Ablation suites: an architecture and its memory ablations trained over seeds and compared. This
layer sits above training and evaluation (it drives the trainer and reads its probe results);
nothing below imports it."""
