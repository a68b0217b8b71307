"""The contracts everything else is built on: the search space, trials, the system contract,
its public spec, the registry that finds systems by name, turning one evaluation into an outcome,
and metric units and number formatting (`units`).

May import: the standard library, numpy/scipy/scikit-optimize/gymnasium for space conversions.
Nothing else in autosys.
"""
