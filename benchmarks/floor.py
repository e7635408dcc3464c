"""The floor under ``rank100_ms``: one ranking of 100 candidates cut down to the parts that
no rewrite of Looper's Python could take out, timed one after another in one process, on the
bench's data directory and disk, after each round's ranking calls:

- the subject's feature read (Feast's SQLite online store, read as the Decision service does);
- CatBoost building the Pool of the 100 rows and predicting them with the live model (the
  rows encoded beforehand);
- the decision's record as JSON (orjson, as the log encodes it; a ranking the Decision
  service logged during the run);
- writing it and fdatasync (the default durability acknowledges after both).

Everything else a ranking does is left out: gRPC, authentication, decoding and checking the
request, encoding the rows, the id index, the policy and the answer. The figure is the p50
of the four parts' sum; a handler cannot be faster than it on this machine without a faster
disk or a lighter model.

    python -m benchmarks.floor --data DIR --requests rank.bin --scratch DIR   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import orjson

from benchmarks import generator

if TYPE_CHECKING:
    from services.decisions.record import DecisionRecord
    from services.platform.data_dir import DecisionPaths

Part = tuple[str, Callable[[int], object]]  # a name, and the work of call i


def time_parts(parts: list[Part], calls: int, warmup: int,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Each part's p50 and the p50 of their sum ("total"), in microseconds, over ``calls``
    runs of the parts one after another (after ``warmup`` runs that are not counted)."""
    samples: dict[str, list[float]] = {name: [] for name, _ in parts}
    totals: list[float] = []
    for i in range(warmup + calls):
        took = []
        for _, work in parts:
            began = clock()
            work(i)
            took.append(clock() - began)
        if i >= warmup:
            for (name, _), seconds in zip(parts, took):
                samples[name].append(seconds)
            totals.append(sum(took))
    return {**{name: statistics.median(values) * 1e6 for name, values in samples.items()},
            "total": statistics.median(totals) * 1e6}


def logged_decision(paths: "DecisionPaths", use_case: str, ranked: int | None = None) -> "DecisionRecord":
    """The first decision of ``use_case`` in the Decision service's log that a model made
    (the training run's first ones are defaults, with less to log and answer), and that
    ranked ``ranked`` candidates when given (the training run's rankings have fewer)."""
    from services.decisions.log import iter_decisions

    for record in iter_decisions(paths):
        if record.use_case == use_case and record.model_version and ranked in (None, len(record.ranking)):
            return record
    wanted = f"ranking {ranked} candidates " if ranked is not None else ""
    raise LookupError(f"no decision of {use_case!r} by a model {wanted}in {paths.log}: make one first")


def ranking_parts(data_dir: Path, requests: Path, scratch: Path) -> tuple[list[Part], Callable[[], None]]:
    """The four parts of the requests' rankings, and what closes the scratch file."""
    from looperpb.v1 import decision_pb2
    from services.blueprints.store import BlueprintStore
    from services.decision.decider import model_rows
    from services.decision.server import to_command
    from services.features.store import FeastFeatureSource, feature_store
    from services.models.live import LiveModels
    from services.models.registry import ModelRegistry
    from services.platform.data_dir import DataDir
    from services.platform.settings import Settings

    settings = Settings.load({"data_dir": str(data_dir)})
    data = DataDir(settings.data_dir)
    commands = [to_command(decision_pb2.DecideRequest.FromString(m)) for m in generator.read_requests(requests)]
    blueprint = BlueprintStore(data.blueprints).latest(commands[0].use_case)
    model = LiveModels(ModelRegistry(data.models)).get(blueprint.name)
    if model is None:
        raise LookupError(f"use case {blueprint.name!r} has no live model")
    source = FeastFeatureSource(feature_store(settings, data))
    features = {**source.fetch(blueprint, commands[0].subject), **commands[0].context}
    matrix = model.input.matrix(model_rows(blueprint, commands[0], features)[1])
    record = logged_decision(data.decisions, blueprint.name, len(commands[0].candidates)).to_dict()
    encoded = [b""]
    fd = os.open(scratch / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(_: int) -> None:
        os.write(fd, encoded[0])
        os.fdatasync(fd)

    parts = [("feature read", lambda i: source.fetch_many([(blueprint, commands[i % len(commands)].subject)])),
             ("CatBoost", lambda i: model.predict_encoded(matrix)),
             ("record JSON", lambda i: encoded.__setitem__(0, orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS))),
             ("write + fdatasync", write)]
    return parts, lambda: os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the bench's Looper data directory")
    parser.add_argument("--requests", type=Path, required=True, help="the ranking requests' file")
    parser.add_argument("--scratch", type=Path, required=True, help="a folder on the same disk for the writes")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--each-line", action="store_true",
                        help="print ready, then measure once for each line read from stdin until it closes")
    args = parser.parse_args(argv)
    parts, close = ranking_parts(args.data, args.requests, args.scratch)
    if args.each_line:
        print("ready", flush=True)
    try:
        for _ in sys.stdin if args.each_line else [""]:
            p50_us = time_parts(parts, args.calls, args.warmup)
            print(json.dumps({"calls": args.calls, "p50_us": {name: round(value, 1) for name, value in p50_us.items()}}),
                  flush=True)
    finally:
        close()
    return 0


class FloorProbe:
    """The bench's handle on the floor, run as its own process (it imports Feast and
    CatBoost as the Decision service does) and measured once a round, beside that round's
    ranking calls."""

    def __init__(self, data_dir: Path, requests: Path | str, scratch: Path, calls: int = 300):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.floor", "--data", str(data_dir), "--requests", str(requests),
             "--scratch", str(scratch), "--calls", str(calls), "--each-line"],
            cwd=generator.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Ready before the bench measures anything: its imports alone take a core for seconds.
        if self.process.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError(f"the floor probe did not start ({self.process.returncode}); its error is above")

    def measure(self) -> dict:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the floor probe exited ({self.process.wait()}); its error is above")
        return json.loads(line)

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
