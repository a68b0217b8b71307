"""Config files: `tune --config` round-trips with the command line for every adapter's example, bad files are one
line naming the file and key, and every documented input format's example loads with its real loader."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autosys.cli.config import ConfigError, dump_toml, load_agent_config, option_type, tomllib
from autosys.cli.main import _mount_command_groups, app
from autosys.core.registry import available_systems
from autosys.run.study import open_study

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*.toml"))
EXAMPLES = ROOT / "docs" / "examples"
SMALL = ["--records", "300", "--operations", "200", "--repeats", "1", "--seconds", "0.3"]


def invoke(*args: str, cwd: Path = ROOT):
    """The CLI in-process (from the repository root, where the examples' relative paths point)."""
    _mount_command_groups()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), prog_name="autosys")
    finally:
        os.chdir(before)


def resolved(*args: str) -> dict:
    """The study a command line describes, as `--print-config` prints it (nothing runs)."""
    result = invoke("tune", *args, "--print-config")
    assert result.exit_code == 0, result.output
    return tomllib.loads(result.stdout)


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def to_command_line(data: dict) -> list[str]:
    """The command line a config file stands for: SYSTEM, flags, system options, --set, --tuner-option."""
    argv = [data["system"]]
    for key, value in data.items():
        if key == "system" or isinstance(value, dict):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else ([f"--no-{key.replace('_', '-')}"] if key == "intensify" else [])
        else:
            argv += [flag, str(value)]
    for name, value in data.get("options", {}).items():
        argv += [f"--{name.replace('_', '-')}", _text(value)]
    argv += [f"--set={name}={_text(value)}" for name, value in data.get("set", {}).items()]
    argv += [f"--tuner-option={name}={_text(value)}" for name, value in data.get("tuner_options", {}).items()]
    return argv


def test_there_is_an_example_config_for_every_adapter():
    systems = {tomllib.loads(path.read_text())["system"] for path in CONFIGS}
    assert systems == set(available_systems())


@pytest.mark.parametrize("path", [*CONFIGS, EXAMPLES / "study.toml"], ids=lambda p: p.name)
def test_config_file_and_command_line_resolve_to_the_same_study(path, tmp_path):
    data = tomllib.loads(path.read_text())
    from_file = resolved("--config", str(path.relative_to(ROOT)))
    from_cli = resolved(*to_command_line(data))
    assert from_file == from_cli
    # and it is the file's study: every value in the file is in the resolved one, typed as in the file
    for key, value in data.items():
        if isinstance(value, dict):
            expected = {k: _text(v) for k, v in value.items()} if key == "set" else value
            assert from_file[key] == expected, key
        else:
            assert from_file[key] == value, key
    # printing the resolved study gives a file that resolves to itself (its paths are read from the current directory)
    again = tmp_path / "again.toml"
    again.write_text(dump_toml(from_file))
    assert resolved("--config", str(again)) == from_file


def test_the_command_line_wins_flag_by_flag_option_by_option_knob_by_knob():
    out = resolved("--config", "experiments/configs/sqlite.toml", "--budget", "3", "--records", "100",
                   "--set", "journal_mode=wal", "--no-intensify", "--tuner", "random")
    file = tomllib.loads((ROOT / "experiments/configs/sqlite.toml").read_text())
    assert out["budget"] == 3 and out["tuner"] == "random" and out["intensify"] is False
    assert out["seed"] == file["seed"] and out["confirm"] == file["confirm"] and out["dir"] == file["dir"]
    assert out["options"] == {**file["options"], "records": 100}
    assert out["set"] == {**file["set"], "journal_mode": "wal"}
    # SYSTEM on the command line wins too: the file's options must then fit that system
    bad = invoke("tune", "kernel", "--config", "experiments/configs/sqlite.toml", "--print-config")
    assert bad.exit_code == 2 and "sqlite.toml: options (for kernel).workload: unknown option" in " ".join(bad.output.split())


def test_a_config_runs_a_real_study_with_command_line_overrides(tmp_path):
    out = tmp_path / "out.json"
    result = invoke("tune", "--config", "experiments/configs/sqlite.toml", "--budget", "2", "--confirm", "0",
                    "--dir", str(tmp_path / "s"), "--json", str(out), "--quiet", *SMALL)
    assert result.exit_code == 0, result.output
    storage, spec = open_study(tmp_path / "s")
    assert storage.count() == 2
    storage.close()
    assert spec["seed"] == 1 and spec["tuner"] == "meta" and spec["confirm"] == 0
    assert spec["fixed"] == {"temp_store": "memory"}
    assert spec["system_options"]["workload"] == "ycsb-b" and spec["system_options"]["records"] == 300
    assert json.loads(out.read_text())["system"] == "sqlite"


def _error(tmp_path: Path, text: str, *extra: str) -> str:
    path = tmp_path / "study.toml"
    path.write_text(text)
    result = invoke("tune", "--config", str(path), "--dir", str(tmp_path / "s"), *extra)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert str(path) in lines[0]
    assert not (tmp_path / "s").exists()
    return lines[0]


@pytest.mark.parametrize("text, needle", [
    ('system = "sqlite"\nbudjet = 3\n', "unknown key 'budjet'; known: "),
    ('system = "sqlite"\nbudget = "ten"\n', 'budget must be an integer, not "ten" (a string)'),
    ('system = "sqlite"\nbudget = 2.5\n', "budget must be an integer, not 2.5 (a number)"),
    ('system = "sqlite"\nintensify = "yes"\n', "intensify must be true or false"),
    ('system = "sqlite"\nbudget = 0\n', "study.toml: budget must be at least 1, not 0"),
    ('system = "sqlite"\nseed = -1\n', "study.toml: seed must be at least 0"),
    ('system = "sqlite"\njson = "/proc/none/out.json"\n', "study.toml: json /proc/none/out.json"),
    ('system = "sqlite"\ntime_budget = "soon"\n', "time_budget must be a finite number"),
    ('system = "sqlite"\n[options]\nrecords = 0.5\n', "options.records must be an integer, not 0.5"),
    ('system = "sqlite"\n[options]\ncolour = "red"\n', "options.colour: unknown option; known: workload"),
    ('system = "sqlite"\n[options]\ndurable = "no"\n', "options.durable must be true or false"),
    ('system = "sqlit"\n', "system: unknown system 'sqlit'"),
    ('system = "sqlite"\ntuner = "nope"\n', "tuner: unknown tuner 'nope'"),
    ('system = "sqlite"\ntuner = "bo"\n[tuner_options]\nbogus = 1\n', "tuner_options.bogus: unknown option"),
    ('system = "sqlite"\ntuner = "bo"\n[tuner_options]\nn_initial = "five"\n', "tuner_options.n_initial must be an integer"),
    ('system = "sqlite"\nset = 3\n', "set must be a table ([set] with name = value lines)"),
    ('system = "sqlite"\n[set]\nnosuch = 3\n', "set: unknown parameter 'nosuch'"),
    ('system = "sqlite"\n[set]\njournal_mode = "bogus"\n', "journal_mode='bogus' is not allowed"),
    ('[options]\nrecords = 3\n', 'no system: add system = "NAME"'),
    ('system = "sqlite"\nbudget = \n', "not valid TOML"),
])
def test_bad_files_are_one_line_naming_file_and_key(tmp_path, text, needle):
    assert needle in _error(tmp_path, text)


def test_config_file_problems_beyond_its_keys(tmp_path):
    missing = invoke("tune", "--config", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "cannot read" in missing.output and "none.toml" in missing.output
    (tmp_path / "s.toml").write_text('system = "sqlite"\n')
    resume = invoke("tune", "--config", str(tmp_path / "s.toml"), "--resume", str(tmp_path))
    assert resume.exit_code == 2 and "--config describes a new study" in resume.output
    printed = invoke("tune", "--config", str(tmp_path / "s.toml"), "--print-config")
    assert printed.exit_code == 0 and 'system = "sqlite"' in printed.stdout
    # a file of settings only: the system comes from the command line, and the file's options must fit it
    (tmp_path / "opts.toml").write_text("budget = 3\n[options]\nrecords = 100\n")
    assert resolved("sqlite", "--config", str(tmp_path / "opts.toml"))["options"] == {"records": 100}
    wrong = invoke("tune", "kernel", "--config", str(tmp_path / "opts.toml"), "--print-config")
    assert wrong.exit_code == 2 and "options (for kernel).records: unknown option" in " ".join(wrong.output.split())


def test_tuner_options_from_the_command_line_are_typed_and_checked():
    out = resolved("sqlite", "--tuner", "bo", "--tuner-option", "n_initial=5", "--tuner-option", "xi=0.05")
    assert out["tuner_options"] == {"n_initial": 5, "xi": 0.05}
    for args, needle in [
        (("--tuner-option", "n_initial=many"), "--n-initial expects an integer"),
        (("--tuner-option", "bogus=1"), "tuner 'bo' has no such option"),
        (("--tuner-option", "seed=1"), "set by the study"),
    ]:
        result = invoke("tune", "sqlite", "--tuner", "bo", *args, "--print-config")
        assert result.exit_code == 2 and needle in result.output, (args, result.output)


def test_print_config_leaves_secrets_out():
    out = resolved("mysql", "--password", "hunter2", "--port", "3307", "--storage", "postgresql://u:pw@h/db")
    assert out["options"] == {"port": 3307}
    assert out["storage"] == "postgresql://u@h/db"


def test_dump_toml_writes_what_tomllib_reads():
    data = {"a": 'quote " and \\ and\nnewline', "b": 3, "c": 0.1, "d": True, "e": "µs", "skip": None,
            "t": {"x": 1, "needs quoting": "v"}, "empty": {}}
    assert tomllib.loads(dump_toml(data)) == {"a": data["a"], "b": 3, "c": 0.1, "d": True, "e": "µs",
                                              "t": {"x": 1, "needs quoting": "v"}}


def test_option_types_come_from_defaults_then_simple_annotations():
    import inspect

    def f(a: int = 3, b: "int | None" = None, c: "float | None" = None, d: "str | None" = None,
          e: "Sequence[float] | None" = None, g=None, h: bool = False):
        pass

    params = inspect.signature(f).parameters
    assert [option_type(params[n]) for n in "abcdegh"] == [int, int, float, str, str, str, bool]


# ----------------------------------------------------------------------------- every documented format loads


def test_every_example_in_docs_loads_with_its_real_loader():
    from autosys_adapters.kv.workloads import load_kv_workload
    from autosys_adapters.learned_index.keys import load_keys
    from autosys_adapters.pagecache.traces import read_trace
    from autosys_adapters.workloads import load_benchmark

    keys = load_keys(EXAMPLES / "keys.txt")
    assert keys.dtype.kind == "u" and len(keys) == 13 and (keys[1:] >= keys[:-1]).all()
    trace = read_trace(EXAMPLES / "trace.txt")
    assert len(trace) == 200 and trace.writes is not None and 0 < trace.writes.sum() < 200
    assert len(read_trace(EXAMPLES / "trace.csv", column="page")) == 30
    workload = load_kv_workload(str(EXAMPLES / "kv-workload.toml"))
    assert workload.name == "sessions" and workload.absent_fraction == 0.1 and workload.base.mix["scan"] == 0.05
    bench = load_benchmark(str(EXAMPLES / "db-workload.toml"))
    assert bench.workload.name == "orders" and bench.workload.mix["payment"] == 0.4
    agent = load_agent_config(EXAMPLES / "agent.toml")
    assert agent["guardrails"]["change_budget"] == 30 and agent["window"] == 1.0
    study = resolved("--config", "docs/examples/study.toml")
    assert study["system"] == "sqlite" and study["set"] == {"journal_mode": "wal"}
    formats = (ROOT / "docs" / "formats.md").read_text()
    for example in EXAMPLES.iterdir():
        assert f"examples/{example.name}" in formats, example.name


def test_every_file_an_example_config_names_exists():
    for path in CONFIGS:
        options = tomllib.loads(path.read_text()).get("options", {})
        for key in ("workload", "trace", "keys"):
            value = options.get(key)
            if isinstance(value, str) and "/" in value:
                assert (ROOT / value).is_file(), (path.name, value)


@pytest.mark.parametrize("text, suffix, needle", [
    ('{"window": 1, "colour": 2}', ".json", "unknown setting 'colour'"),
    ('{"window": "fast"}', ".json", "window must be a number"),
    ('{"guardrails": {"change_budget": 1.5}}', ".json", "guardrails.change_budget must be an integer"),
    ('{"guardrails": {"brakes": 1}}', ".json", "unknown guardrail guardrails.'brakes'"),
    ('[1, 2]', ".json", "must be an object"),
    ('{"window": ', ".json", "not valid JSON"),
    ('window = ', ".toml", "not valid TOML"),
])
def test_bad_agent_configs_name_file_and_key(tmp_path, text, suffix, needle):
    path = tmp_path / f"agent{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    assert needle in str(info.value) and str(path) in str(info.value)
