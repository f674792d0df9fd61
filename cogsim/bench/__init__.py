"""Benchmarks: each module measures a figure against a baseline in the same run and appends rows
to a versioned CSV under ``experiments/`` (see :mod:`cogsim.bench.common`)."""
