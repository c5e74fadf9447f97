"""Analysis of a study run: a cell's results, collecting the cells, the paper's tables, the per-question
predictions, strategy comparisons with the run as the unit and their power, plots and the analysis report.

May import: core, stats, data, models, score, labels, order, train.
"""
