"""SystemSpec: derived from the constructor, secrets and commands kept out, rebuilt without trusting storage."""

from __future__ import annotations

import pickle
import warnings

import pytest

from autosys.core.plugins import UntrustedPlugin
from autosys.core.registry import _runtime, make_system, rebuild_system, register_system
from autosys.core.spec import StoredOptionIgnored, SystemSpec, redact_text, strip_url_password
from autosys.core.space import Float, Space
from autosys.core.system import Measurement, Objective, System
from autosys.executors import SystemRef


class Server(System):
    """A stand-in with a secret option, a URL option and a command option (no server needed)."""

    name = "spec-server"
    secret_options = ("password",)
    executable_options = ("restart_command",)

    def __init__(self, url: str = "postgresql://u@h/db", password: str = "", restart_command: str = "", size: int = 1, **extra):
        self.url, self.password, self.restart_command, self.size, self.extra = url, password, restart_command, size, extra

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        return Measurement({"y": config["x"]})


@pytest.fixture
def registered():
    register_system("spec-server", Server)
    yield "spec-server"
    _runtime.pop("spec-server", None)


def test_the_spec_is_derived_from_the_constructor_call_with_defaults_filled_in():
    system = Server("postgresql://u@h/db", size=3, flavour="x")
    assert system.spec.name == "tests.test_spec:Server"
    assert system.spec.options == {"url": "postgresql://u@h/db", "password": "", "restart_command": "", "size": 3, "flavour": "x"}
    assert system.options() == system.spec.options and system.spec.importable


def test_a_registered_class_built_directly_is_named_by_its_entry_point():
    from autosys_adapters.sqlite.knobs import SQLiteKnobs

    spec = SQLiteKnobs(records=100).spec
    assert spec.name == "sqlite" and spec.options["records"] == 100
    assert make_system("sqlite", {"records": 100}).spec == spec


def test_make_system_names_the_spec_as_asked_and_it_round_trips(registered):
    system = make_system(registered, {"size": 5, "password": "pw"})
    spec = system.spec
    assert spec.name == registered and spec.options["size"] == 5
    again = make_system(spec.name, spec.options).spec
    assert again == spec and hash(again) == hash(spec)
    assert pickle.loads(pickle.dumps(system)).spec == spec


def test_public_drops_secrets_and_commands_and_strips_url_passwords():
    system = Server(url="postgresql://alice:s3cr3t@db.example:5433/app?sslmode=require", password="hunter2",
                    restart_command="sudo systemctl restart postgresql")
    public = system.spec.public()
    assert public.options["url"] == "postgresql://alice@db.example:5433/app?sslmode=require"
    assert "password" not in public.options and "restart_command" not in public.options
    stored = system.spec.to_json()
    assert stored["system"] == "tests.test_spec:Server" and stored["system_options"] == dict(public.options)
    for text in (repr(system.spec), str(stored)):
        assert "s3cr3t" not in text and "hunter2" not in text and "systemctl" not in text
    assert system.spec.options["password"] == "hunter2"  # the live spec keeps it for this process's workers


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:pw@h:5432/db", "postgresql://u@h:5432/db"),
    ("postgresql://:pw@h/db", "postgresql://h/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("mysql://root:p%40ss@127.0.0.1/x?a=1", "mysql://root@127.0.0.1/x?a=1"),
    ("not a url", "not a url"),
])
def test_url_passwords_are_stripped_and_the_rest_kept(url, expected):
    assert strip_url_password(url) == expected


def test_messages_lose_url_passwords():
    message = "cannot reach postgresql://postgres:SECRET123@127.0.0.1:5432/postgres: refused"
    assert redact_text(message) == "cannot reach postgresql://postgres@127.0.0.1:5432/postgres: refused"


def test_workers_rebuild_from_the_spec_and_only_unimportable_systems_travel_pickled():
    ref = SystemRef.of(Server(size=2))
    assert ref.pickled is None and ref.name == "tests.test_spec:Server" and ref.options["size"] == 2
    assert ref.build().size == 2

    class Local(Server):
        pass

    local = SystemRef.of(Local())
    assert local.spec is None and local.pickled is not None and not Local().spec.importable


def test_rebuilding_ignores_a_stored_command_and_says_so_in_one_line(registered):
    stored = {"system": registered, "system_options": {"size": 2, "restart_command": "sh -c 'touch /tmp/PWNED'"}}
    with pytest.warns(StoredOptionIgnored) as caught:
        system = rebuild_system(stored)
    assert system.restart_command == "" and system.size == 2
    assert len(caught) == 1 and "\n" not in str(caught[0].message) and "restart_command" in str(caught[0].message)
    # the invoking user's own command is used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoredOptionIgnored)
        assert rebuild_system(stored, given={"restart_command": "true"}).restart_command == "true"


def test_rebuilding_takes_secrets_from_the_user_and_refuses_other_changes(registered, monkeypatch):
    stored = {"system": registered, "system_options": {"url": "postgresql://u@h/db", "size": 2}}
    assert rebuild_system(stored, given={"password": "pw"}).password == "pw"
    monkeypatch.setenv("AUTOSYS_PASSWORD", "from-env")
    assert rebuild_system(stored).password == "from-env"
    assert rebuild_system(stored, given={"url": "postgresql://u:pw@h/db"}).url == "postgresql://u:pw@h/db"
    with pytest.raises(ValueError, match="--size would change the study"):
        rebuild_system(stored, given={"size": 3})
    with pytest.raises(ValueError, match="--url would change the study"):
        rebuild_system(stored, given={"url": "postgresql://u:pw@elsewhere/db"})


def test_a_stored_module_path_is_imported_only_when_named_again(tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "planted_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing: pass\n")
    monkeypatch.chdir(tmp_path)  # where `module:Class` imports look first
    for name in ("planted_mod:Thing", "os:system"):
        with pytest.raises(UntrustedPlugin, match="name it again"):
            rebuild_system({"system": name, "system_options": {"command": f"touch {marker}"}})
    assert not marker.exists()
    stored = {"system": "tests.test_spec:Server", "system_options": {"size": 4}}
    assert rebuild_system(stored, named="tests.test_spec:Server").size == 4
    with pytest.raises(LookupError, match="made with system"):
        rebuild_system(stored, named="tests.systems_for_tests:Quadratic")


def test_a_spec_is_frozen():
    spec = SystemSpec("x", {"a": 1})
    with pytest.raises(AttributeError):
        spec.name = "y"  # type: ignore[misc]
