"""Questions: the embedded data sets and the published file formats, the question table, splits, the leakage
guard, prompts, and the data summaries of notebook 01.

May import: core.
"""
