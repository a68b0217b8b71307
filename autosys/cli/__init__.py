"""The `autosys` command line: a thin layer over the Python API (`main`), plus command groups
(`importance`) and those adapters contribute through the `autosys.commands` entry points.
Config files (`config`: a study for `tune --config`, the agent's settings), what a system
takes and tunes (`describe`), following a running study (`watch`: `show --watch`).

May import: everything in autosys (it is the top layer); adapters only through entry points.
"""
