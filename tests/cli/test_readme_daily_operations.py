"""The README's "Daily operations" commands are commands this `looper` accepts: each line of
the section's shell block is parsed and run against addresses where nothing listens, so it
must get as far as calling a service (exit 1, UNAVAILABLE) and never be a usage error (2)."""

from __future__ import annotations

import shlex
import socket

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import ROOT
from tests.quickstart.test_readme_quick_start import code_blocks, section


def daily_operations() -> list[list[str]]:
    blocks = code_blocks(section((ROOT / "README.md").read_text(), "## Daily operations"))
    lines = [shlex.split(line, comments=True) for b in blocks if b.language == "sh" for line in b.text.splitlines()]
    return [words[1:] for words in lines if words]


COMMANDS = daily_operations()


def test_the_section_shows_the_daily_commands():
    shown = {" ".join(words[:2]) if words[0] in ("blueprint", "decision", "label", "credentials", "delete",
                                                 "deletion") else words[0]
             for words in COMMANDS}
    assert {"use-cases", "join-stats", "decision get", "label get", "train", "runs", "models", "promote", "pause",
            "blueprint history", "blueprint show", "credentials create", "delete subject", "deletion get"} <= shown


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:3]) for c in COMMANDS])
def test_each_readme_command_is_accepted(args):
    with socket.socket() as closed:  # bound, not listening: every call is refused at once
        closed.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
        result = CliRunner().invoke(app, args, env={
            "LOOPER_DECISION_ADDR": nowhere, "LOOPER_FEEDBACK_ADDR": nowhere, "LOOPER_TRAINER_ADDR": nowhere,
            "LOOPER_TOKEN": "lpr_readme", "LOOPER_TOKEN_FILE": None})
    assert result.exit_code == 1, f"looper {shlex.join(args)}: exit {result.exit_code}\n{result.stderr}"
    assert result.stderr.startswith("looper: UNAVAILABLE: ") and f"service at {nowhere} is unavailable" in result.stderr
