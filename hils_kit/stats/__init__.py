"""Statistics with no kit vocabulary: paired tests, intervals, multiplicity corrections, power.

May import: core.
"""
