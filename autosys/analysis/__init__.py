"""Reading finished studies: reports and plots, knob importance, workload mapping (reuse of
similar past studies), and datasets for the learners.

May import: `autosys.run` and everything below it.
"""
