"""The Python side of the Go load generator (``benchmarks/loadgen``, built by ``make
bench-loadgen``): request files, jobs, results, and the processes whose CPU time a job
reads from /proc."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / ".tools" / "bench" / "loadgen"
# Every call replaces this with a fresh id of the same length (decision ids are idempotency
# keys): job prefix + zero-padded counter, within [A-Za-z0-9._:-].
UNIQUE = "@" * 28


@dataclass
class Step:
    target: str
    method: str
    requests: str  # a file written by write_requests
    metadata: dict[str, str] = field(default_factory=dict)
    unique: str = ""
    trace_sampled: bool = False


@dataclass
class Job:
    name: str
    steps: list[Step]
    concurrency: int
    conns: int
    calls: int
    warmup: int
    server_pids: list[int]
    id_prefix: str = ""
    timeout_ms: int = 30_000


def write_requests(path: Path, messages: list[bytes]) -> str:
    """Serialized requests, each after its length (uint32, little-endian)."""
    path.write_bytes(b"".join(struct.pack("<I", len(m)) + m for m in messages))
    return str(path)


def read_requests(path: Path | str) -> list[bytes]:
    """The requests of a file written by ``write_requests``."""
    data, messages, offset = Path(path).read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        messages.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    return messages


# Digits the counter keeps in an id: a longer prefix would cut them, and ids would repeat
# (replayed decisions, far cheaper than new ones, measured as if they were new).
COUNTER_DIGITS = 9


def run(job: Job, binary: Path = BINARY) -> dict:
    """Runs one job; the result as the generator reports it (see loadgen's Result)."""
    if len(job.id_prefix) > len(UNIQUE) - COUNTER_DIGITS:
        raise ValueError(f"id prefix {job.id_prefix!r} leaves fewer than {COUNTER_DIGITS} digits of a "
                         f"{len(UNIQUE)}-character id to its counter")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(asdict(job), spec)
    try:
        done = subprocess.run([str(binary), "-job", spec.name], capture_output=True, text=True,
                              env={**os.environ, "GOMAXPROCS": str(os.cpu_count() or 1)})
    finally:
        os.unlink(spec.name)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed on {job.name}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a server of several worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return sorted(tree)
