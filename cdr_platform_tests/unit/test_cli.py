"""`cdr`: every command and group answers --help, and the console script is installed."""

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdr_platform.cli import cdr


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


ALL = sorted(_commands(cdr))


def test_the_cli_has_the_commands_the_readme_names():
    assert {
        ("stack", "up"),
        ("stack", "down"),
        ("stack", "status"),
        ("stack", "setup"),
        ("demo",),
        ("generate",),
        ("mediate",),
        ("rate",),
        ("rating", "conformance"),
        ("screenshots",),
    } <= set(ALL)


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "cdr")
def test_every_level_answers_help(path):
    result = CliRunner().invoke(cdr, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: cdr")
    # the first line of the docstring is the help a person reads
    command = cdr
    for name in path:
        command = command.commands[name]
    assert (command.help or "").split("\n")[0].strip()[:40] in " ".join(result.output.split())


def test_rate_refuses_a_day_that_is_not_a_date():
    result = CliRunner().invoke(cdr, ["rate", "--day", "yesterday"])
    assert result.exit_code == 2 and "--day" in result.output


def test_the_console_script_runs():
    script = Path(sys.executable).parent / "cdr"
    assert script.exists() or shutil.which("cdr"), "the venv has no `cdr`: pip install -e ."
    result = subprocess.run(
        [str(script) if script.exists() else "cdr", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "stack" in result.stdout and "mediate" in result.stdout
