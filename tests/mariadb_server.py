"""The shared MariaDB/MySQL server the tests use: a connection (or a skip saying why) and its global variables.

Tests that touch the server compare `global_variables` before and after, so a
test that leaves a setting changed fails.
"""

from __future__ import annotations

import os

import pytest

HOST = os.environ.get("AUTOSYS_MYSQL_HOST", "127.0.0.1")


def connect_or_skip(host: str = HOST):
    """A root connection to `host`:3306 (autocommit), or skip the test with the reason there is none."""
    pymysql = pytest.importorskip("pymysql", reason="pymysql is not installed (pip install 'autosys-toolkit[db]')")
    try:
        return pymysql.connect(host=host, port=3306, user="root", password="", autocommit=True, connect_timeout=2)
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable at {host}:3306: {exc}")


def global_variables(conn) -> dict:
    """Every global variable, but those that move on their own (`MySQLKnobs.IGNORED`: GTID positions and the like)."""
    from autosys_adapters.dbserver.mysql import MySQLKnobs

    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES")
        return {name: value for name, value in cur.fetchall() if name.lower() not in MySQLKnobs.IGNORED}
