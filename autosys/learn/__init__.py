"""Models behind one small interface (fit, predict with uncertainty where the model has it,
rank) and the surrogates Bayesian optimization uses.

May import: `autosys.core`, numpy, scikit-learn.
"""
