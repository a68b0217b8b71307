"""The `autosys` command line: a thin layer over the Python API (`main`), plus command groups
(`importance`) and those adapters contribute through the `autosys.commands` entry points.

May import: everything in autosys (it is the top layer); adapters only through entry points.
"""
