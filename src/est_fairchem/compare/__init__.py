"""Compare models on one dataset as a reviewer would: paired seeds that draw the data, a
learning rate per model, budgets from an isolated timing, intervals and Holm's correction.

``est-fairchem compare DATA.yml BASELINE.yml MODEL.yml ...`` (see ``docs/guide/compare.md``):
:mod:`~est_fairchem.compare.study` builds every run's fairchem config,
:mod:`~est_fairchem.compare.cost` times the models, :mod:`~est_fairchem.compare.runs` runs
one training through the real ``fairchem`` command, :mod:`~est_fairchem.compare.plan` runs
them all in order and resumes, :mod:`~est_fairchem.compare.statistics` and
:mod:`~est_fairchem.compare.report` write the tables and plots.
"""
