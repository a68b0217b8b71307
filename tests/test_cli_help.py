"""Self-describing systems: `tune SYSTEM --help`, `list SYSTEM`, defaults in every help page, bare flags, --version."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import autosys
from autosys.cli.describe import describe_options, format_default, parse_option_docs
from autosys.cli.main import UsageError, _mount_command_groups, app, convert_options, parse_extra_flags
from autosys.core.registry import UnknownSystem, available_systems, system_factory
from autosys.core.space import Float, Space
from autosys.core.system import Objective, System

ROOT = Path(__file__).resolve().parents[1]


class Documented(System):
    """A toy system whose options are documented in the one convention describe.py reads.

    Args:
        width: how wide the toy is,
            in toy units.
        tall, deep: two sizes
            that share one text.
        colour: no help beyond this line.

    Returns nothing: this paragraph is not part of the Args block.
    """

    def __init__(self, width: float = 2.5, tall: int = 3, deep: int = 4, colour: str = "", fast: bool = False):
        self.width = width

    def space(self) -> Space:
        return Space([Float("x", 0.0, 1.0, default=0.25)])

    @property
    def objective(self) -> Objective:
        return Objective("y", "minimize")

    def evaluate(self, config):
        return {"y": config["x"]}


def _invoke(*args: str):
    _mount_command_groups()
    result = CliRunner().invoke(app, list(args), prog_name="autosys")
    return result, " ".join(result.output.split())


def test_option_docs_follow_the_args_convention():
    docs = parse_option_docs(Documented.__doc__)
    assert docs == {
        "width": "how wide the toy is, in toy units.",
        "tall": "two sizes that share one text.",
        "deep": "two sizes that share one text.",
        "colour": "no help beyond this line.",
    }
    assert parse_option_docs("Options: a (prose, not a block), b.") == {}
    options = {o.name: o for o in describe_options(Documented)}
    assert options["width"].type == "float" and options["width"].default == 2.5
    assert options["fast"].help == "" and format_default(options["fast"].default) == "false"


def test_tune_kv_help_lists_its_options_and_knobs_with_defaults():
    result, text = _invoke("tune", "kv", "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: autosys tune" in text and "--budget" in text  # tune's own page comes first
    factory = system_factory("kv")
    options = describe_options(factory)
    assert {o.name for o in options} >= {"workload", "records", "engines", "isolate"}
    for option in options:
        assert re.search(rf"{option.flag} <[^>]+> [^\[]*\[default: {re.escape(format_default(option.default))}\]", text), option
    assert "preset name, or JSON/TOML file of YCSB settings" in text  # help from kv's docstring
    space = factory().space()
    knobs = text[text.index("Knobs of kv"):]
    positions = []
    for param in space:
        match = re.search(rf"\s{re.escape(param.name)}\s", knobs[positions[-1] if positions else 0:])
        assert match, param.name
        positions.append((positions[-1] if positions else 0) + match.start())
    for i, param in enumerate(space):  # each knob's own row holds its default and its apply cost
        row = knobs[positions[i]: positions[i + 1] if i + 1 < len(positions) else len(knobs)]
        assert f"[default: {format_default(param.default_value())}]" in row, row
        assert f"apply cost: {getattr(param, 'apply_cost', 'none')}" in row, row
    assert "only when engine=rocksdb" in knobs  # conditions are shown


def test_tune_help_without_a_system_is_the_plain_page():
    result, text = _invoke("tune", "--help")
    assert result.exit_code == 0 and "Usage: autosys tune" in text and "Knobs of" not in text


def test_tune_help_builds_the_space_from_the_options_given():
    _, durable = _invoke("tune", "sqlite", "--help")
    _, risky = _invoke("tune", "sqlite", "--no-durable", "--help")
    assert "forbids synchronous=off" in durable and "forbids" not in risky


def test_list_system_describes_every_installed_system():
    for name in available_systems():
        try:
            system_factory(name)
        except UnknownSystem:
            continue  # its extra is not installed: `autosys list` says so
        result, text = _invoke("list", name)
        assert result.exit_code == 0, (name, result.output)
        assert f"Options of {name}" in text and f"Knobs of {name}" in text, (name, text)


def test_list_and_help_show_a_documented_option_s_help():
    result, text = _invoke("list", f"{__name__}:Documented")
    assert result.exit_code == 0, result.output
    assert "--width <float> how wide the toy is, in toy units. [default: 2.5]" in text
    assert "--colour <str> no help beyond this line. [default: \"\"]" in text
    assert "x float [0.0, 1.0] [default: 0.25]" in text
    bad, _ = _invoke("list", "nosuchsystem")
    assert bad.exit_code == 2


def _commands(command, path: tuple[str, ...] = ()):
    """Every command under `command` (typer carries its own click classes: duck-typed here)."""
    yield path, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_option_of_every_command_shows_its_default_in_help():
    _mount_command_groups()
    root = typer.main.get_command(app)
    seen = 0
    for path, command in _commands(root):
        result, text = _invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert not re.search(r"\w \.(\s|$)", text), (path, text)  # no markup ate a "[default: ...]" ("included .")
        ctx = command.context_class(command, info_name=path[-1] if path else "autosys")
        for param in command.params:
            if param.param_type_name != "option" or param.hidden or "--help" in param.opts:
                continue
            record = param.get_help_record(ctx)
            help_text = " ".join(record[1].split())
            assert param.required or "[default:" in help_text, (path, param.opts, help_text)
            assert param.required or re.search(r"\[default: [^\]]+\]", help_text), (path, param.opts)
            assert re.sub(r"\s", "", help_text) in re.sub(r"\s", "", text), (path, param.opts, help_text)  # wrapping aside
            seen += 1
    assert seen > 30


def test_boolean_options_take_bare_flags():
    factory = system_factory("sqlite")
    assert convert_options(factory, parse_extra_flags(["--durable"])) == {"durable": True}
    assert convert_options(factory, parse_extra_flags(["--no-durable"])) == {"durable": False}
    assert convert_options(factory, parse_extra_flags(["--durable", "--records", "5"])) == {"durable": True, "records": 5}
    assert convert_options(factory, parse_extra_flags(["--durable", "false"])) == {"durable": False}
    for args, needle in [(["--records"], "--records needs a value"), (["--no-records"], "--records is not a boolean option"),
                         (["--nosuch"], "unknown option --nosuch")]:
        with pytest.raises(UsageError, match=needle):
            convert_options(factory, parse_extra_flags(args))


def test_bare_boolean_flag_end_to_end(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "autosys", "tune", "sqlite", "--no-durable", "--budget", "1", "--quiet",
         "--dir", str(tmp_path / "s"), "--records", "200", "--operations", "100", "--repeats", "1", "--seconds", "0.2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    from autosys.run.study import open_study

    storage, _ = open_study(tmp_path / "s")
    spec = storage.load_spec()
    storage.close()
    assert spec["system_options"]["durable"] is False


def test_version():
    run = subprocess.run([sys.executable, "-m", "autosys", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == f"autosys {autosys.__version__}"
