"""Database servers over a real connection: the shared knob-tuning base (`base`: snapshot,
apply, restore, measure), PostgreSQL (`postgres`) and MariaDB/MySQL (`mysql`), and their
monitors (`monitors`)."""
