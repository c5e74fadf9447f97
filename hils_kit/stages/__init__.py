"""One module per notebook: its parameters dataclass (the notebook's parameters cell is generated from it), its
steps and its files. The notebooks import the stages, never the study runner.

May import: every layer below (core ... analyse).
"""
