"""Evaluation of detectors against labelled data (NAB-style anomaly scoring in :mod:`cogsim.evaluate.nab`)."""
