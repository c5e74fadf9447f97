"""A study: the YAML config, its grid of cells and their notebook parameters, planning and running the jobs on
the local, Ray or SLURM backends, and the HTML reports.

May import: every layer below (core ... stages).
"""
