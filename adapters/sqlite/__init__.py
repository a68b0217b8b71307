"""SQLite: PRAGMA knobs of an embedded database file (`knobs`, the `sqlite` system) and a live
key-value service on SQLite that the agent keeps tuned (`service`, the `sqlite-service` system)."""
