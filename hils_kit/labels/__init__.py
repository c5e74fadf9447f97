"""Labels that drive the orders: label scenarios, human and LLM difficulty, LLM-defined categories (embedding
clusters), difficulty tiers and label files.

May import: core, stats, data, models, score.
"""
