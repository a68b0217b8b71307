"""Running studies: the ask/tell loop (`study`), choosing a study's answer (`selection`),
`minimize`/`maximize` for plain functions (`optimize`), measuring in a forked child
(`isolation`), undoing the host's speed phases (`hostspeed`), and one log line per
finished trial (`progress`, logger "autosys.study"), and the system's monitors sampled while each
trial runs, stored with it (`monitoring`).

May import: `autosys.core`, `autosys.tuners`, `autosys.executors`, `autosys.storage`, `autosys.learn`.
"""
