"""Runs each language's client suite for the cross-language tests and reads their results."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
STAMPS = ROOT / ".tools" / "stamps"


def require_clients_setup() -> None:
    """Skips (or, under `make test-clients`, fails) when the client toolchains are not set up."""
    missing = [tool for tool in ("go", "mvn", "node", "npm") if shutil.which(tool) is None]
    missing += [f".tools/stamps/{s}" for s in ("go-plugins", "go-mod", "npm", "maven") if not (STAMPS / s).exists()]
    if missing:
        message = f"client toolchains not set up (missing: {', '.join(missing)}); run `make setup-clients`"
        if os.environ.get("LOOPER_REQUIRE_CLIENTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    """Runs a suite; fails the test with its output when it fails."""
    began = time.monotonic()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} in {cwd.relative_to(ROOT)} exited {result.returncode}:\n{output[-8000:]}")
    print(f"{' '.join(command)}: {time.monotonic() - began:.1f}s")
    return output


def go_results(output: str) -> dict[str, str]:
    """Test name -> PASS/FAIL/SKIP from `go test -v` output."""
    return {m.group(2): m.group(1) for m in re.finditer(r"--- (PASS|FAIL|SKIP): (\w+)", output)}


def node_counts(output: str) -> dict[str, int]:
    """The closing counters of `node --test` (tests, pass, fail, skipped, ...)."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^# (\w+) (\d+)$", output, re.M)}


def surefire_results(reports: Path) -> dict[str, str]:
    """Test name -> passed/failed/skipped from Surefire's XML reports."""
    results = {}
    for report in reports.glob("TEST-*.xml"):
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[f"{case.get('classname').rsplit('.', 1)[-1]}.{case.get('name')}"] = outcome
    return results
