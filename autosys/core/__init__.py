"""The contracts everything else is built on: the search space, trials, the system contract,
its public spec, stratified random draws of choice knobs (`stratified`), the registry that finds systems by name, turning one evaluation into an outcome,
and metric units and number formatting (`units`), and the monitor contract with the host and
process monitors every system has (`monitor`).

May import: the standard library, numpy/scipy/scikit-optimize/gymnasium for space conversions,
psutil for the host and process monitors.
Nothing else in autosys.
"""
