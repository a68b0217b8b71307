"""Fixtures every test gets."""

import pytest


@pytest.fixture(autouse=True)
def _private_knowledge_base(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's knowledge base or host cache (autosys/learn/knowledge.py, host.py):
    each test gets an empty knowledge base of its own, so `tune`'s warm start stays deterministic."""
    monkeypatch.setenv("AUTOSYS_KB", str(tmp_path_factory.mktemp("kb") / "knowledge.db"))
    monkeypatch.setenv("AUTOSYS_HOST_CACHE", str(tmp_path_factory.getbasetemp() / "host-cache.json"))
