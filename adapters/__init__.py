"""Concrete systems that autosys can tune; each registers through pyproject entry points."""
