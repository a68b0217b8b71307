"""Tuning a running system: monitors that sample it, the embedded agent (monitors -> model ->
policy -> apply, with guardrails and rollback), and gymnasium environments over systems.

May import: `autosys.core`, `autosys.tuners`, `autosys.learn`, `autosys.storage`.
"""
