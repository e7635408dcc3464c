"""Generates the Python protobuf and gRPC stubs of looper.v1 into the ``looperpb`` package.

protoc names Python modules after the proto paths (``looper/v1/types.proto`` ->
``looper.v1.types_pb2``); the stubs live in their own package, ``looperpb.v1``, which both
the services and the client import, so the generated imports are moved there too.

Usage: python scripts/protogen.py OUT_DIR   (make proto uses protos/python/src)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "looperpb"


def generate_python(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "looper" / "v1").glob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as scratch:
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={scratch}",
                f"--pyi_out={scratch}", f"--grpc_python_out={scratch}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        target = Path(out_dir) / PACKAGE / "v1"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        (target / "__init__.py").write_text('"""Generated from protos/looper/v1 by `make proto`; do not edit."""\n')
        for generated in sorted((Path(scratch) / "looper" / "v1").iterdir()):
            text = generated.read_text().replace("from looper.v1 import", f"from {PACKAGE}.v1 import")
            (target / generated.name).write_text(text)


if __name__ == "__main__":
    generate_python(Path(sys.argv[1]))
