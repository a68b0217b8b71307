"""Models behind one small interface (fit, predict with uncertainty where the model has it,
rank) and the surrogates Bayesian optimization uses; the knowledge base of finished studies
(`knowledge`), the host fingerprint it indexes them by (`host`), and nearest-study mapping (`mapping`).

May import: `autosys.core`, numpy, scikit-learn; the standard library's sqlite3, psutil, and psycopg (on use).
"""
