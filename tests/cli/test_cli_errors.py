"""A user error prints one line naming the input and the problem, and exits 1.

These run ``segflow`` in a fresh process, as a user does; none reaches a flow run (errors
inside flow runs are in ``test_cli_server.py``, which has a server to run them on).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.errors import StoreError
from segflow_cli.app import app
from storage.sequences import SequenceRepository
from tests.cli.cli_helpers import cli_env, lines, run_cli

CONFIGS = [
    # (file, content, what the one line says)
    ("unknown.yaml", "epochs: 2\nbogus_field: 1\n", "invalid bogus_field: Extra inputs"),
    ("tag.yaml", "epochs: !!python/object:os.system x\n", "not valid YAML: could not determine"),
    ("syntax.yaml", "epochs: [1,\n", "'syntax.yaml' is not valid YAML"),
    ("comma.json", '{"epochs": 1,}', "'comma.json' is not valid JSON"),
    ("bad.toml", "epochs = \n", "'bad.toml' is not valid TOML"),
    ("list.yaml", "- 1\n", "must hold a mapping of parameters, got list"),
    ("bad-value.yaml", "epochs: 0\n", "invalid epochs"),
]


@pytest.mark.parametrize(("name", "content", "says"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_bad_config_file_fails_in_one_line(
    tmp_path: Path, name: str, content: str, says: str
) -> None:
    (tmp_path / name).write_text(content)
    result = run_cli(["train", "--store", "s", "--config", name], cli_env(tmp_path), tmp_path)
    assert result.returncode == 1
    assert lines(result.stderr) == [lines(result.stderr)[0]] and result.stdout == ""
    assert lines(result.stderr)[0].startswith("error: ") and says in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--config", "missing.yaml"], "Cannot read config file 'missing.yaml'"),
        (["inspect", "--store", "bogus://x"], "Unknown store URL scheme 'bogus' in 'bogus://x'"),
        (["train", "--store", "s", "--epochs", "0"], "invalid epochs"),
    ],
)
def test_a_bad_argument_fails_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    result = run_cli(args, cli_env(tmp_path), tmp_path)
    assert result.returncode == 1, result.stderr
    assert len(lines(result.stderr)) == 1 and says in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("flag", "extra"), [(["--debug"], {}), ([], {"SEGFLOW_DEBUG": "1"})], ids=["flag", "env"]
)
def test_debug_shows_the_traceback(tmp_path: Path, flag: list[str], extra: dict[str, str]) -> None:
    (tmp_path / "tag.yaml").write_text("epochs: !!python/object:os.system x\n")
    args = [*flag, "train", "--config", "tag.yaml"]
    result = run_cli(args, cli_env(tmp_path, **extra), tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConstructorError" in result.stderr
    assert lines(result.stderr)[-1].startswith("error: Config file 'tag.yaml'")


def test_a_segflow_error_escaping_a_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEGFLOW_DEBUG", raising=False)

    def broken(self: SequenceRepository) -> None:
        raise StoreError("The store 'x' is broken.")

    monkeypatch.setattr(SequenceRepository, "list_info", broken)
    result = CliRunner().invoke(app, ["inspect", "--store", str(tmp_path)])
    assert result.exit_code == 1
    assert lines(result.output) == ["error: The store 'x' is broken."]


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def buggy(self: SequenceRepository) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(SequenceRepository, "list_info", buggy)
    result = CliRunner().invoke(app, ["inspect", "--store", str(tmp_path)])
    # The exception leaves the command: Python prints its traceback (CliRunner keeps it).
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--version"], 0),  # success
        (["inspect", "--store", "bogus://x", "--json"], 1),  # the work failed (a user error)
        (["ingest"], 2),  # a usage error: a missing argument
        (["train", "--epochs", "many"], 2),  # a usage error: an option of the wrong type
        (["no-such-command"], 2),
    ],
)
def test_exit_codes_are_the_documented_ones(args: list[str], code: int) -> None:
    assert CliRunner().invoke(app, args).exit_code == code
