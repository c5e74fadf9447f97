"""Analysis of a study run: a cell's results, collecting the cells, the paper's tables, paired tests and power,
plots and the analysis report.

May import: core, stats, data, models, score, labels, order, train.
"""
