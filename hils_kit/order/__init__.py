"""Training orders: the strategy registry, the strategies' functions, ordering a question table, the fed-order
audit, the adaptive schedules decided during training, the letter prior, the placebo twins' shuffled labels, and
the views and widgets that show orders.

May import: core, stats, data, models, score, labels.
"""
