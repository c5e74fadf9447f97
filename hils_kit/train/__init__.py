"""Training: presets (TrainConfig), TRL SFT with the order kept exactly, the adaptive strategies' feed, the
learning-curve probe, peak memory.

May import: core, stats, data, models, score, labels, order.
"""
