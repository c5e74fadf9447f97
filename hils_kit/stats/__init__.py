"""Statistics with no kit vocabulary: paired tests, the run as the unit, intervals, multiplicity corrections, power,
random-effects meta-analysis and simulated studies.

May import: core.
"""
