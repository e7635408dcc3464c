"""The committed Python stubs must match what the protos generate today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_stubs_are_not_stale(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "protogen.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "looper" / "v1").glob("*_pb2*.py*"))
    assert generated, "protoc generated nothing"
    committed = ROOT / "clients" / "python" / "src"
    stale = [str(p) for p in generated if not (committed / p).exists()
             or not filecmp.cmp(tmp_path / p, committed / p, shallow=False)]
    assert not stale, f"run `make proto`: stale generated files {stale}"
