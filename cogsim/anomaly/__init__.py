"""HTM anomaly detection on time series: the application built on :mod:`cogsim.htm`'s algorithms.

``detector`` (encoders + SP + TM + likelihood, every series a stream of one batch), ``likelihood``,
``csvio`` (``timestamp,value`` files), ``nab`` (NAB's scorer), ``corpus`` (a labelled synthetic
corpus) and ``files`` (what ``cogsim anomaly`` does).
"""
