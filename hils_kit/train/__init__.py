"""Training: presets (TrainConfig), TRL SFT with the order kept exactly, the learning-curve probe.

May import: core, stats, data, models, score, labels, order.
"""
