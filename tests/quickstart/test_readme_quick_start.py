"""The README's quick start, run as written against real services and real Feast.

The test stands in for the section's `make run` block: it prepares a data directory with the
code `make run` uses and starts the services on free ports. Then it runs the section's other
shell blocks and its Python blocks, with the README's addresses replaced by the real ones and
`.venv/bin/...` by this test's virtual environment. A Python line ``print(...)  # prints: X``
must print the line X.
"""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
import symtable
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.notifications.population import PROFILE_PART
from examples.notifications.prepare import profile_table
from services.platform.data_dir import DataDir
from services.launcher import start_looper
from services.tracing.run_local import prepare_quick_start
from tests.conftest import ROOT

README = ROOT / "README.md"
QUICK_START = "## Quick start"
README_ADDRESSES = {"decision": "127.0.0.1:50051", "feedback": "127.0.0.1:50052", "trainer": "127.0.0.1:50053"}
README_TOKEN_FILE = "data/run/looper-token"  # what `make run` writes: a local cluster administrator's token
MAKE_RUN = "make run"
PRINTS = re.compile(r"^\s*print\(.*\)\s*# prints: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class CodeBlock:
    language: str
    text: str


def section(markdown: str, heading: str) -> str:
    """The lines under the first ``##`` heading that starts with ``heading``, up to the next
    ``##`` heading; lines inside fenced code blocks are never headings."""
    lines, inside, in_fence = [], False, False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            if inside:
                break
            inside = line.startswith(heading)
            continue
        if inside:
            lines.append(line)
    assert lines, f"README.md has no section {heading!r}"
    return "".join(lines)


def code_blocks(markdown: str) -> list[CodeBlock]:
    return [CodeBlock(language, text) for language, text in
            re.findall(r"^```(\w*)\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)]


def undefined_names(source: str) -> set[str]:
    """Names the code reads but never binds, imports or gets from the builtins."""
    module = symtable.symtable(source, "README.md", "exec")
    bound = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported()} | set(dir(builtins))
    tables, undefined = [module], set()
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for symbol in table.get_symbols():
            reads_global = table is module or symbol.is_global()
            if symbol.is_referenced() and reads_global and symbol.get_name() not in bound:
                undefined.add(symbol.get_name())
    return undefined


def with_real_addresses(text: str, looper) -> str:
    """The README's addresses and local token file replaced by the test's own."""
    for service, readme_address in README_ADDRESSES.items():
        text = text.replace(readme_address, looper.addresses[service])
    return text.replace(README_TOKEN_FILE, str(looper.token_file))


def with_test_venv(command: str) -> str:
    looper = Path(sys.executable).with_name("looper")
    looper_command = str(looper) if looper.exists() else f"{sys.executable} -m services.cli"
    return command.replace(".venv/bin/looper", looper_command).replace(".venv/bin/python", sys.executable)


@pytest.fixture(scope="module")
def quick_start():
    """The quick start's shell blocks after its `make run`, and its Python blocks as one program."""
    blocks = code_blocks(section(README.read_text(), QUICK_START))
    shell = [b.text.strip() for b in blocks if b.language in ("sh", "bash", "shell")]
    python = "".join(b.text for b in blocks if b.language == "python")
    assert shell and shell[0] == MAKE_RUN, f"the quick start should start with a `{MAKE_RUN}` block, has {shell[:1]}"
    assert MAKE_RUN not in "\n".join(shell[1:]), "only the first block may run `make run` (this test stands in for it)"
    assert python, "the quick start has no Python block"
    return shell[1:], python


@pytest.fixture(scope="module")
def looper(tmp_path_factory):
    """Looper as `make run` leaves it; prepared twice, because a second `make run` must work
    too and keep the profiles (and their timestamps) that the first one published."""
    data_dir = tmp_path_factory.mktemp("quick-start") / "data"
    profiles = profile_table(DataDir(data_dir)) / PROFILE_PART
    assert prepare_quick_start(data_dir) == 0, "preparing the data directory as `make run` does failed"
    first = profiles.read_bytes()
    assert prepare_quick_start(data_dir) == 0, "preparing the data directory a second time failed"
    assert profiles.read_bytes() == first, "a second preparation replaced the published profiles"
    server = start_looper(data_dir)
    yield server
    server.stop()


def test_the_python_blocks_use_only_what_they_define(quick_start):
    _, python = quick_start
    assert not undefined_names(python), f"the README's Python refers to undefined {sorted(undefined_names(python))}"


def test_the_quick_start_runs_as_written_and_again(quick_start, looper):
    """Twice, as a reader who goes through it again meets it: the blueprint is unchanged, the
    decision id and the event id make the calls idempotent."""
    shell, python = quick_start
    for _ in range(2):
        for command in shell:
            run_shell(with_test_venv(with_real_addresses(command, looper)))
        run_python(with_real_addresses(python, looper))


def run_shell(command: str) -> None:
    ran = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, f"`{command}` failed:\n{ran.stdout}{ran.stderr}"


def run_python(source: str) -> None:
    ran = subprocess.run([sys.executable, "-c", source], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, f"the README's Python failed:\n{ran.stdout}{ran.stderr}"
    printed = ran.stdout.splitlines()
    for expected in PRINTS.findall(source):
        assert expected in printed, f"the README says a line prints {expected!r}; it printed {printed}"
