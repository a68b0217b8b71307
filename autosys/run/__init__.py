"""Running studies: the ask/tell loop (`study`), choosing a study's answer (`selection`),
`minimize`/`maximize` for plain functions (`optimize`), measuring in a forked child
(`isolation`), and undoing the host's speed phases (`hostspeed`).

May import: `autosys.core`, `autosys.tuners`, `autosys.executors`, `autosys.storage`, `autosys.learn`.
"""
