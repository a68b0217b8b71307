"""Learned indexes over sorted keys: a recursive model index and a PGM-style index.

Both answer batched lower-bound lookups exactly (equal to numpy.searchsorted),
with numpy or, when numba is installed, compiled kernels.
"""

from autosys_adapters.learned_index.pgm import PGM, PGMConfig
from autosys_adapters.learned_index.rmi import RMI, RMIConfig

__all__ = ["PGM", "PGMConfig", "RMI", "RMIConfig"]
