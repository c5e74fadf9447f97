"""Scoring: the answer letter's probability, per-question predictions, accuracy and its intervals, evaluating a
model on test sets.

May import: core, stats, data, models.
"""
