"""Evaluation of runs and models: held-out test sets, the Table I / Fig. 2 report, comparisons, confidence."""
