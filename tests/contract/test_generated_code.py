"""The committed Python stubs (the ``looperpb`` package) must match what the protos generate
today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_stubs_are_not_stale(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "protogen.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "looperpb" / "v1").iterdir())
    assert any(p.name.endswith("_pb2.py") for p in generated), "protoc generated nothing"
    committed = ROOT / "protos" / "python" / "src"
    stale = [str(p) for p in generated if not (committed / p).exists()
             or not filecmp.cmp(tmp_path / p, committed / p, shallow=False)]
    extra = sorted({p.name for p in (committed / "looperpb" / "v1").iterdir() if p.suffix in (".py", ".pyi")}
                   - {p.name for p in generated})
    assert not stale and not extra, f"run `make proto`: stale generated files {stale}, left over {extra}"


def test_the_services_take_their_stubs_from_looperpb_not_from_the_client():
    """The services get their stubs from ``looperpb``; only the command line (services/cli/) and
    the launcher use the client."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "services").rglob("*.py")
                 if p.name != "launcher.py" and p.parent.name != "cli"
                 and any(line.startswith(("from looper.", "from looper import", "import looper"))
                         and "looper.tracing" not in line for line in p.read_text().splitlines())]
    assert offenders == []
