"""The one table of commands: every entry runs the function it names, its listed help is what
that function says, and listing the commands loads neither torch nor faiss."""

from __future__ import annotations

import importlib
import subprocess
import sys

from lookalike.services.cli.main import COMMANDS, GROUPS


def _words(text: str) -> str:
    return " ".join(text.split())


def test_each_entry_names_a_function_whose_docstring_starts_with_the_listed_help() -> None:
    for name, entry in COMMANDS.items():
        module, function = entry.target.split(":")
        target = getattr(importlib.import_module(module), function)
        assert _words(target.__doc__ or "").startswith(_words(entry.help).rstrip(".")), name


def test_every_subcommand_belongs_to_a_listed_group() -> None:
    groups = {name.split()[0] for name in COMMANDS if " " in name}
    assert groups == set(GROUPS)


def test_help_lists_every_command_without_importing_torch_or_faiss() -> None:
    code = ("import sys; sys.argv = ['lookalike', '--help']\n"
            "from lookalike.services.cli.main import run\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted({'torch', 'faiss'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    top_level = {name for name in COMMANDS if " " not in name} | set(GROUPS)
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("    ")}
    assert listed == top_level


def test_a_group_lists_its_commands_and_a_command_shows_its_options() -> None:
    run = [sys.executable, "-m", "lookalike.services.cli"]
    spaces = subprocess.run([*run, "spaces", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert spaces.returncode == 0, spaces.stderr
    for command in ("create", "reindex", "list", "set-default", "delete"):
        assert f"  {command} " in spaces.stdout
    search = subprocess.run([*run, "search", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert search.returncode == 0 and "--qe" in search.stdout
    unknown = subprocess.run([*run, "spaces", "nope"], capture_output=True, text=True,
                             timeout=120)
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
