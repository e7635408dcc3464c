"""The breaking-change check really guards the contract: an incompatible edit fails it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
IMAGE = ROOT / "protos" / "released" / "looper.v1.binpb"


def run_breaking(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUF), "breaking", "--against", str(IMAGE)], cwd=workdir,
                          capture_output=True, text=True)


def copy_contract(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "protos" / "looper", tmp_path / "protos" / "looper")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def test_current_protos_are_compatible_with_the_released_contract(tmp_path):
    result = run_breaking(copy_contract(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_changing_a_field_number_is_reported(tmp_path):
    work = copy_contract(tmp_path)
    proto = work / "protos" / "looper" / "v1" / "decision.proto"
    proto.write_text(proto.read_text().replace("string decision_id = 2;", "string decision_id = 99;", 1))
    result = run_breaking(work)
    assert result.returncode != 0
    assert "decision_id" in result.stdout + result.stderr
