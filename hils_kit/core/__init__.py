"""Shared plumbing: paths and safe writes, the run layout (every file name of a study's tree), typed parameters,
precision, progress and provenance.

May import: nothing else of the kit.
"""
