"""Experiments the commands run: programs on top of the library and the training loop, never imported by them.

* :mod:`~semflow.experiments.paper` (``semflow bench paper``): the paper's Tables 1 and 2 on one data set, and
  :mod:`~semflow.experiments.paper_report` its Markdown, JSON and plot.
* :mod:`~semflow.experiments.demo` (``semflow demo``): train on shapes in minutes, score, synthesize, and
  :mod:`~semflow.experiments.demo_report` its HTML report.
"""
