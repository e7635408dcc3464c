"""The committed Go and TypeScript stubs are what `make clients` generates from the protos
today (the Java stubs are generated at build time and not committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.clients.harness import CLIENTS, ROOT, require_clients_setup


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target, variable, committed, subdir", [
    ("clients-go", "CLIENTS_GO_OUT", CLIENTS / "go" / "looperpb", "looperpb"),
    ("clients-typescript", "CLIENTS_TS_GEN", CLIENTS / "typescript" / "src" / "gen", ""),
])
def test_committed_stubs_are_fresh(tmp_path, target, variable, committed, subdir):
    require_clients_setup()
    result = subprocess.run(["make", "-s", "-f", "mk/clients.mk", target, f"{variable}={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    fresh, current = _tree(tmp_path / subdir), _tree(committed)
    stale = sorted(name for name in fresh.keys() | current.keys() if fresh.get(name) != current.get(name))
    assert fresh, "nothing was generated"
    assert not stale, f"stale generated files {stale}; run `make clients` and commit the result"
