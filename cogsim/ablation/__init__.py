"""Ablation suites: an architecture and its memory ablations trained over seeds and compared. This
layer sits above training and evaluation (it drives the trainer and reads its probe results);
nothing below imports it. ``variants`` makes the variants, ``runner`` trains every variant × seed,
``tables`` compares them, ``suite`` reads suite files."""
