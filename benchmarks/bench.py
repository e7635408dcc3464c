"""`make bench`: Looper's Decide measured side by side with its ceiling and with the peer
stack a user would assemble, in one run, interleaved, on this machine, now.

- Decide: ``looper serve decision`` with the notification example's model, trained through
  Looper's own loop (Feast online read of 7 features from two views, CatBoost scoring both
  actions, the policy, the fsynced decision log, bearer-token authentication).
- Ceiling: the Python gRPC echo server with as many processes as Decide gets; and with one,
  beside ``--workers 1``, for what more processes give any server beside this generator.
- Decide's gRPC layer with a canned answer (``benchmarks/echo_server.py --canned-decide``):
  the real server, authentication and protobuf work, nothing decided.
- Peer: ``feast listen`` (Feast's gRPC feature server) then MLServer 1.7.1 with its CatBoost
  runtime, serving the same features and the same model file; one feature fetch, then one
  inference call scoring the same two rows, per decision.
- Also: DecideBatch, ranking 100 candidates with numeric candidate features in one call,
  tracing on (parent-based 1% sampler, exported over OTLP) against off, and ``--workers 2``
  against ``--workers 1`` when ``looper serve`` has the flag, and ``LOOPER_DURABILITY=os``
  (acknowledged once the OS has the bytes) against the default fsync before the ack.
- The ranking's floor (``benchmarks/floor.py``): its feature read, CatBoost call and fsynced
  log write alone, once a round beside the ranking calls.

Every figure comes from the same Go load generator (grpc-go, a connection per concurrent
caller as independent callers would have, which the kernel spreads over the server's
processes; a fixed number of calls after a warm-up) at concurrency 1, 16 and 64, with the
server processes' CPU time read from /proc. Each round runs every workload once at each concurrency, the order
rotating between rounds; the table shows the median of the rounds and the JSON under
``benchmarks/results/`` keeps every run. The Feedback and Trainer services run only to train
the models and are stopped before measuring, so the two cores hold the server under test and
the generator. Nothing here asserts a timing: it reports.

Ends with one line:
``BENCH RESULT decide_vs_ceiling=<r> decide_vs_peer=<r> p99_vs_ceiling=<r> rank100_ms=<t>
workers_scaling=<r> tracing_cost=<pct>%``
after one with each of those ratios' lowest and highest round (``ranges_line``), itself after
one with the baselines that three of them are held against (``baselines_line``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import generator, servers, workloads  # noqa: E402
from benchmarks.generator import UNIQUE, Job, Step  # noqa: E402
from benchmarks.floor import FloorProbe  # noqa: E402
from benchmarks.otlp_sink import OtlpSink  # noqa: E402
from examples.notifications.population import make_population  # noqa: E402
from examples.notifications.prepare import prepare as prepare_example  # noqa: E402
from services.launcher import start_looper  # noqa: E402
from services.platform.data_dir import DataDir  # noqa: E402

CONCURRENCY = (1, 16, 64)
DECIDE = "/looper.v1.DecisionService/Decide"
DECIDE_BATCH = "/looper.v1.DecisionService/DecideBatch"
ECHO = "/bench.Echo/Echo"
TRACING_1PCT = {"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.01", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
# The targets (throughput against the ceiling and the peer, p99 against the ceiling)
# are set at concurrency 16; what needs the server saturated (the workers' scaling, the cost of
# tracing and of fsync) is read at 64.
TARGETS_AT, SATURATED_AT = 16, 64
BATCH_SIZE, BATCH_CONCURRENCY = 100, 4
RANK_CALLS = 150  # a round's ranking calls on each of the two processes
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Workload:
    """One column of the comparison: what a call is and which processes serve it."""

    key: str
    label: str
    steps: list[Step]
    pids: Callable[[], list[int]]
    calls_factor: float = 1.0  # the echo makes more calls, so that its runs last long enough to measure
    runs: dict[int, list[dict]] = field(default_factory=dict)  # concurrency -> one result per round


@dataclass
class Plan:
    compared: list[Workload]  # measured at every concurrency in every round, in rotating order
    batch: Workload
    rank: Workload
    rank_traced: Workload
    batch_size: int = BATCH_SIZE
    floor: Callable[[], dict] | None = None  # measures the ranking's floor (see benchmarks/floor.py)
    floor_runs: list[dict] = field(default_factory=list)  # one a round

    def everything(self) -> list[Workload]:
        return [*self.compared, self.batch, self.rank, self.rank_traced]


class Clock:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.began:.0f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per figure at concurrency 16 and 64")
    parser.add_argument("--calls-c1", type=int, default=500, help="measured calls per figure at concurrency 1")
    parser.add_argument("--workers", type=int, default=0,
                        help="Decision processes (default: the cores, when looper serve takes --workers)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for needed, target in ((generator.BINARY, "bench-loadgen"), (servers.PEERS_VENV / "bin" / "mlserver", "bench-peers")):
        if not needed.exists():
            print(f"bench: {needed} is missing: run `make {target}` (or `make bench`)", file=sys.stderr)
            return 2
    has_workers, no_workers_reason = servers.workers_flag()
    if args.workers > 1 and not has_workers:
        print(f"bench: --workers {args.workers}: {no_workers_reason}", file=sys.stderr)
        return 2
    workers = args.workers or ((os.cpu_count() or 1) if has_workers else 1)
    scaling_reason = no_workers_reason if not has_workers else "--workers is 1" if workers == 1 else ""
    clock, stamp, machine = Clock(), datetime.now(timezone.utc), machine_facts()
    print(f"== {stamp:%Y-%m-%d %H:%M} UTC, {machine['cpus']} CPUs, load average {machine['loadavg_start']} at start "
          f"(other processes may share the machine); about {1 + 0.85 * args.rounds:.0f} minutes on 2 cores", flush=True)
    work = Path(tempfile.mkdtemp(prefix="looper-bench-"))
    started: list = []
    sink = OtlpSink()
    try:
        users, items = make_population(1000, seed=11), workloads.catalog()
        models = train(work / "looper", users, items, clock)
        print(f"== starting the servers under test ({clock})", flush=True)
        plan, peer_check = start_and_plan(work, started, sink, models, users, items,
                                          workers if has_workers else None, workers, not scaling_reason)
        print(f"== measuring: {args.rounds} rounds x {len(plan.compared)} workloads x concurrency "
              f"{', '.join(map(str, CONCURRENCY))}, then DecideBatch and ranking ({clock})", flush=True)
        run_rounds(plan, args, clock)
        spans = handler_times(sink, args.rounds * RANK_CALLS)
        machine["loadavg_end"] = loadavg()
        summary = summarize(plan, spans, scaling_reason)
        seconds = time.monotonic() - clock.began
        print_tables(plan, spans, summary, workers)
        result = {
            "when": stamp.isoformat(), "took_s": round(seconds, 1), "machine": machine,
            "settings": {"rounds": args.rounds, "calls": args.calls, "calls_c1": args.calls_c1, "workers": workers,
                         "workers_flag": has_workers, "concurrency": CONCURRENCY,
                         "targets_at": TARGETS_AT, "saturated_at": SATURATED_AT,
                         "models": {k: v for k, v in models.items() if not k.endswith("_file")}},
            "peer_check": peer_check,
            "workloads": {w.key: {"label": w.label, "steps": [s.method for s in w.steps], "runs": w.runs}
                          for w in plan.everything()},
            "handler_spans": spans, "floor": plan.floor_runs, "summary": summary, "bench_result": bench_line(summary),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"bench-{stamp:%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        failed = sum(run["errors"] for w in plan.everything() for runs in w.runs.values() for run in runs)
        print(f"\nresults: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        print(f"the bench took {seconds / 60:.1f} minutes; the load average went from {machine['loadavg_start']} "
              f"to {machine['loadavg_end']} ({machine['cpus']} CPUs, shared with whatever else runs)")
        if failed:
            print(f"bench: {failed} calls failed (see first_error in the JSON); their figures are not comparable",
                  file=sys.stderr)
        print(baselines_line(summary))
        print(ranges_line(summary))
        print(result["bench_result"], flush=True)
        return 1 if failed else 0
    finally:
        for server in reversed(started):
            server.stop()
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


def start_and_plan(work: Path, started: list, sink: OtlpSink, models: dict, users, items,
                   looper_workers: int | None, workers: int, scaling: bool) -> tuple[Plan, dict]:
    """Starts every server under test (each stopped by the caller through ``started``),
    writes the requests, checks that each server answers as it should, and plans the runs."""
    data = work / "looper"

    def start(make):
        server = make()
        started.append(server)
        return server

    decide = start(lambda: servers.DecisionServer("decide", data, looper_workers, servers.NO_TRACING))
    traced = start(lambda: servers.DecisionServer(
        "decide_traced", data, looper_workers, {**TRACING_1PCT, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}))
    single = start(lambda: servers.DecisionServer("decide_w1", data, 1, servers.NO_TRACING)) if scaling else None
    durable_os = start(lambda: servers.DecisionServer("decide_os", data, looper_workers,
                                                      {**servers.NO_TRACING, "LOOPER_DURABILITY": "os"}))
    echo = start(lambda: servers.EchoServer(workers))
    echo_single = start(lambda: servers.EchoServer(1)) if scaling else None
    peer = start(lambda: servers.PeerStack(work / "peer", DataDir(data).features.repo, models["notification_file"],
                                           workloads.NOTIFICATIONS))
    files = work / "requests"
    files.mkdir()
    singles = workloads.decide_requests(users)
    decide_file = generator.write_requests(files / "decide.bin", [r.SerializeToString() for r in singles])
    peer_files, peer_check = peer_requests(work, files, peer, models, singles[:200])
    check_looper((decide, traced, single, durable_os), users, items, models)
    canned = start(lambda: servers.EchoServer(workers, canned_decide=data))  # answers as a logged check did
    check_canned(canned.address, decide.token, users, models)

    def steps(server, requests=decide_file, method=DECIDE, sampled=False) -> list[Step]:
        return [Step(server.address, method, requests, server.metadata, UNIQUE, sampled)]

    processes = f"{workers} process{'es' if workers > 1 else ''}"
    echo_file = generator.write_requests(files / "echo.bin", workloads.echo_payloads(singles))
    compared = [
        Workload("echo", f"echo ({processes}, ceiling)", [Step(echo.address, ECHO, echo_file)], echo.pids,
                 calls_factor=4),
        Workload("decide", f"Decide ({processes})", steps(decide), decide.pids),
        Workload("decide_api", f"Decide's gRPC layer, canned answer ({processes})",
                 [Step(canned.address, DECIDE, decide_file, decide.metadata, UNIQUE)], canned.pids),
        Workload("pair", "feast listen + MLServer (peer)", [
            Step(peer.feast_address, servers.FEAST_METHOD, peer_files["feast"]),
            Step(peer.mlserver_address, peer_files["method"], peer_files["infer"])], peer.pids),
        Workload("decide_traced", f"Decide, tracing 1% ({processes})", steps(traced), traced.pids),
    ]
    if single:
        compared.append(Workload("decide_w1", "Decide (--workers 1)", steps(single), single.pids))
        compared.append(Workload("echo_w1", "echo (1 process)", [Step(echo_single.address, ECHO, echo_file)],
                                 echo_single.pids, calls_factor=4))
    compared.append(Workload("decide_os", f"Decide, LOOPER_DURABILITY=os ({processes})", steps(durable_os),
                             durable_os.pids))
    batch_file = generator.write_requests(files / "batch.bin", workloads.batch_requests(users, BATCH_SIZE))
    rank_file = generator.write_requests(files / "rank.bin", workloads.rank_requests(users, items))
    floor = start(lambda: FloorProbe(data, rank_file, work))  # after check_looper has logged a ranking
    plan = Plan(compared,
                Workload("batch", f"DecideBatch of {BATCH_SIZE}", steps(decide, batch_file, DECIDE_BATCH), decide.pids),
                Workload("rank100", f"Decide ranking {workloads.RANKED} candidates", steps(decide, rank_file),
                         decide.pids),
                Workload("rank100_traced", "the same, every call traced", steps(traced, rank_file, sampled=True),
                         traced.pids), floor=floor.measure)
    return plan, peer_check


def run_rounds(plan: Plan, args, clock: Clock) -> None:
    """Every workload at every concurrency, round after round, the order rotating so that
    none always follows the same one; then DecideBatch and the ranking calls."""
    sequence = 0
    for round_ in range(args.rounds):
        shift = round_ % len(plan.compared)
        order = plan.compared[shift:] + plan.compared[:shift]
        for concurrency in CONCURRENCY:
            for workload in order:
                calls = args.calls_c1 if concurrency == 1 else args.calls
                sequence += 1
                measure(workload, concurrency, int(calls * workload.calls_factor), sequence)
        sequence += 1
        measure(plan.batch, BATCH_CONCURRENCY, 30, sequence, warmup=3)
        for workload in (plan.rank, plan.rank_traced):
            sequence += 1
            measure(workload, 1, RANK_CALLS, sequence, warmup=20)
        if plan.floor:
            plan.floor_runs.append(plan.floor())
            print(f"   rank100 floor  {_fmt(plan.floor_runs[-1]['p50_us']['total'] / 1000)} ms p50", flush=True)
        print(f"   round {round_ + 1} of {args.rounds} done ({clock})", flush=True)


# --- preparation -----------------------------------------------------------------------

def train(data: Path, users, items, clock: Clock) -> dict:
    """The example's data directory, then both models trained through Looper's loop with all
    three services; they are stopped before anything is measured."""
    from services.models.registry import ModelRegistry

    print(f"== preparing the example's Feast repo and training both models through Looper ({clock})",
          flush=True)
    prepare_example(data, users)
    looper = start_looper(data, "all", env=servers.NO_TRACING, timeout=120)
    try:
        with looper.client(timeout=60) as client:
            notification = workloads.train_notifications(client, users)
            ranking = workloads.train_ranking(client, users, items)
    finally:
        looper.stop()
    registry = ModelRegistry(DataDir(data).models)
    meta = registry.get(workloads.NOTIFICATIONS, notification)
    print(f"   models {notification} ({workloads.NOTIFICATIONS}) and {ranking} ({workloads.RANKING}) "
          f"({clock})", flush=True)
    return {"notification": notification, "ranking": ranking,
            "notification_file": registry.artifact(workloads.NOTIFICATIONS, notification),
            "notification_columns": list(meta.input.columns),
            "notification_categorical": meta.input.categorical_columns}


def peer_requests(work: Path, files: Path, peer, models: dict, requests) -> tuple[dict, dict]:
    """Per decision: the feature fetch a product sends to ``feast listen``, and the inference
    request it builds from what came back (both actions' rows, encoded as Looper encodes
    them), serialized by MLServer's own codec in the peers' virtualenv. Each inference request
    is sent once and its answer compared with the model's own prediction for the same rows."""
    import grpc
    from feast.protos.feast.serving import ServingService_pb2
    from feast.protos.feast.types import Value_pb2
    from feast.type_map import feast_value_type_to_python_type

    from services.blueprints.spec import parse_blueprint
    from services.models.encoding import ACTION_COLUMN, ModelInput

    blueprint = parse_blueprint(__import__("yaml").safe_load(
        (ROOT / "examples/notifications/blueprint.yaml").read_text()))
    refs = list(blueprint.feast_features)
    model_input = ModelInput(tuple(models["notification_columns"]), frozenset(models["notification_categorical"]))
    fetches, rows = [], []
    fetch = None
    with grpc.insecure_channel(peer.feast_address) as channel:
        fetch = channel.unary_unary(servers.FEAST_METHOD,
                                    request_serializer=ServingService_pb2.GetOnlineFeaturesRequest.SerializeToString,
                                    response_deserializer=ServingService_pb2.GetOnlineFeaturesResponse.FromString)
        for request in requests:
            user_id = request.subject["user_id"]
            message = ServingService_pb2.GetOnlineFeaturesRequest(full_feature_names=True)
            message.features.val.extend(refs)
            message.entities["user_id"].val.append(Value_pb2.Value(string_val=user_id))
            fetches.append(message.SerializeToString())
            answer = fetch(message, timeout=30)
            names = list(answer.metadata.feature_names.val)
            features = {name: feast_value_type_to_python_type(result.values[0])
                        for name, result in zip(names, answer.results)}
            missing = [f for f in (ref.replace(":", "__") for ref in refs) if f not in features]
            if missing:
                raise SystemExit(f"bench: feast listen did not return {missing} for {user_id}")
            features.update({k: _scalar(v) for k, v in request.context.items()})
            rows.append([model_input.row({**features, ACTION_COLUMN: action}) for action in blueprint.choices])
    spec = work / "infer-spec.json"
    spec.write_text(json.dumps({"model": workloads.NOTIFICATIONS, "columns": list(model_input.columns),
                                "categorical": model_input.categorical_columns, "requests": rows}))
    infer = files / "infer.bin"
    built = subprocess.run([str(servers.PEERS_VENV / "bin" / "python"), str(ROOT / "benchmarks/peers/infer_requests.py"),
                            str(spec), str(infer), "--check", peer.mlserver_address],
                           capture_output=True, text=True, cwd=ROOT)
    if built.returncode != 0:
        raise SystemExit(f"bench: building MLServer requests failed:\n{built.stderr}")
    answer = json.loads(built.stdout)
    expected = _predict(models["notification_file"], model_input, [row for pair in rows for row in pair])
    served = [p for pair in answer["probabilities"] for p in pair]
    differ = [i for i, (a, b) in enumerate(zip(expected, served)) if abs(a - b) > 1e-9]
    check = {"rows": len(expected), "answered": len(served), "differing": len(differ),
             "rows_with_missing_values": sum(any(v != v for v in row) for pair in rows for row in pair),
             "first": {"mlserver": served[:2], "catboost_here": expected[:2]}}
    if differ or len(served) != len(expected):
        raise SystemExit(f"bench: MLServer's probabilities differ from the model's for {len(differ)} of "
                         f"{len(expected)} rows: the peer would not be scoring the same thing ({check})")
    return {"feast": generator.write_requests(files / "feast.bin", fetches), "infer": str(infer),
            "method": answer["method"]}, check


def _scalar(value):
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def _predict(model_file: Path, model_input, rows: list[list]) -> list[float]:
    import pandas as pd
    from catboost import CatBoostClassifier

    model = CatBoostClassifier()
    model.load_model(str(model_file))
    frame = pd.DataFrame(rows, columns=list(model_input.columns))
    return [float(p) for p in model.predict_proba(frame, thread_count=1)[:, 1]]


def check_looper(deciders, users, items, models) -> None:
    """Each Decision server answers with the trained models before anything is timed."""
    from looper import LooperClient

    for server in filter(None, deciders):
        with LooperClient(server.address, token=server.token, timeout=30) as client:
            decision = client.decide(workloads.NOTIFICATIONS, f"check-{server.name}", {"user_id": users[0].user_id},
                                     {"hour_of_day": 9, "platform": users[0].platform})
            ranked = client.decide(workloads.RANKING, f"check-rank-{server.name}", {"user_id": users[1].user_id},
                                   candidates=workloads.candidates(items[:workloads.RANKED]))
        if decision.model_version != models["notification"] or ranked.model_version != models["ranking"] \
                or len(ranked.ranking) != workloads.RANKED:
            raise SystemExit(f"bench: {server.name} does not decide with the trained models "
                             f"({decision.model_version!r}, {ranked.model_version!r}, {len(ranked.ranking)} ranked)")


def check_canned(address: str, token: str, users, models) -> None:
    """The canned Decide authenticates as Decide does and answers a decision of the model."""
    from looper import LooperClient
    from looper.errors import UnauthenticatedError

    with LooperClient(address, token=token, timeout=30) as client:
        decision = client.decide(workloads.NOTIFICATIONS, "check-canned", {"user_id": users[0].user_id})
    with LooperClient(address, token="not-a-token", timeout=30) as client:
        try:
            client.decide(workloads.NOTIFICATIONS, "check-canned", {"user_id": users[0].user_id})
            refused = False
        except UnauthenticatedError:
            refused = True
    if decision.model_version != models["notification"] or not refused:
        raise SystemExit(f"bench: the canned Decide answered {decision.model_version!r}, or took a bad token")


# --- measuring -------------------------------------------------------------------------

def measure(workload: Workload, concurrency: int, calls: int, sequence: int, warmup: int | None = None) -> dict:
    job = Job(name=f"{workload.key}-c{concurrency}", steps=workload.steps, concurrency=concurrency,
              conns=concurrency, calls=calls,
              warmup=warmup if warmup is not None else max(50, calls // 10), server_pids=workload.pids(),
              id_prefix=f"b{sequence:04d}-")
    result = generator.run(job)
    workload.runs.setdefault(concurrency, []).append(result)
    note = f"  {result['errors']} ERRORS: {result.get('first_error', '')}" if result["errors"] else ""
    if result.get("shed"):
        note += f"  {result['shed']} answers RESOURCE_EXHAUSTED, retried after the server's hint"
    print(f"   {workload.key:<15} c{concurrency:<3} p50 {result['latency_ms']['p50']:7.2f} ms  "
          f"p99 {result['latency_ms']['p99']:7.2f} ms  {result['calls_per_s']:8,.0f} calls/s  "
          f"{result['calls_per_server_cpu_s']:7,.0f} per server CPU-s  others busy "
          f"{_get(result, 'others_cores'):4.2f} cores{note}", flush=True)
    return result


def handler_times(sink: OtlpSink, expected: int, wait: float = 15) -> dict:
    """Server-side span durations of the traced Decision service: every call of the ranking
    workload (sent with a sampled traceparent) and the 1% of notification decisions the
    sampler kept under load; per use case, the handler (the gRPC server span) and its stages."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ranked = {s.trace_id for s in sink.snapshot()
                  if s.name == "looper.decide" and s.attributes.get("looper.use_case") == workloads.RANKING}
        if len(ranked) >= expected:
            break
        time.sleep(0.5)
    spans = sink.snapshot()
    use_case_of = {s.trace_id: s.attributes.get("looper.use_case") for s in spans if s.name == "looper.decide"}
    stages = ("handler", "looper.decide", "looper.feature_fetch", "looper.inference", "looper.policy",
              "looper.decision_log.append")
    found: dict[str, dict[str, list[float]]] = {}
    for span in spans:
        use_case = use_case_of.get(span.trace_id)
        if use_case is None:
            continue
        name = "handler" if span.name.endswith("DecisionService/Decide") else span.name
        if name in stages:
            found.setdefault(use_case, {}).setdefault(name, []).append(span.duration_ms)
    return {use_case: {name: {"n": len(values), "p50_ms": round(statistics.median(values), 3)}
                       for name, values in by_name.items()} for use_case, by_name in found.items()}


# --- reporting -------------------------------------------------------------------------

def median(workload: Workload, concurrency: int, key: str) -> float | None:
    runs = workload.runs.get(concurrency, [])
    values = [_get(r, key) for r in runs if not r["errors"]]
    return statistics.median(values) if values else None


def _get(run: dict, key: str) -> float:
    if key in ("p50", "p99"):
        return run["latency_ms"][key]
    if key == "others_cores":  # what the rest of the machine used meanwhile, in cores
        return max(0.0, run["machine_busy_cpu_s"] - run["server_cpu_s"] - run["client_cpu_s"]) / run["elapsed_s"]
    if key == "shed_per_call":
        return run.get("shed", 0) / run["calls"]
    if key == "generator_share":
        return run["client_cpu_s"] / run["server_cpu_s"] if run["server_cpu_s"] else math.nan
    return run[key]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def per_round(top: Workload, bottom: Workload, concurrency: int, key: str) -> list[float]:
    """The ratio of two workloads' figure in each round (their runs at the same place in the
    rotation, a few seconds apart), for rounds where both ran without errors: how far the
    machine's drift moves a headline ratio within one run."""
    pairs = zip(top.runs.get(concurrency, []), bottom.runs.get(concurrency, []))
    return [_get(a, key) / _get(b, key) for a, b in pairs if not a["errors"] and not b["errors"] and _get(b, key)]


def round_ranges(plan: Plan) -> dict[str, list[float]]:
    """Each headline ratio of the compared workloads, round by round (see ``per_round``)."""
    by = {w.key: w for w in plan.compared}
    ranges = {"decide_vs_ceiling": per_round(by["decide"], by["echo"], TARGETS_AT, "calls_per_s"),
              "api_vs_ceiling": per_round(by["decide_api"], by["echo"], TARGETS_AT, "calls_per_s"),
              "decide_vs_peer": per_round(by["decide"], by["pair"], TARGETS_AT, "calls_per_s"),
              "p99_vs_ceiling": per_round(by["decide"], by["echo"], TARGETS_AT, "p99"),
              "tracing_cost_pct": [(1 - r) * 100 for r in per_round(by["decide_traced"], by["decide"], SATURATED_AT,
                                                                    "calls_per_s")]}
    if "decide_w1" in by:
        ranges["workers_scaling"] = per_round(by["decide"], by["decide_w1"], SATURATED_AT, "calls_per_s")
        ranges["ceiling_scaling"] = per_round(by["echo"], by["echo_w1"], SATURATED_AT, "calls_per_s")
    return ranges


def summarize(plan: Plan, spans: dict, scaling_reason: str) -> dict:
    """The headline figures (see ``definitions``); None where a figure could not be had."""
    by = {w.key: w for w in plan.compared}
    batch, batch_size, rank, rank_traced = plan.batch, plan.batch_size, plan.rank, plan.rank_traced
    decide, echo, pair, traced = by["decide"], by["echo"], by["pair"], by["decide_traced"]
    rate = lambda w, at=SATURATED_AT: median(w, at, "calls_per_s")  # noqa: E731
    handler = spans.get(workloads.RANKING, {}).get("handler")
    rank_e2e = median(rank, 1, "p50")
    tracing = ratio(rate(traced), rate(decide))
    return {
        "decide_vs_ceiling": ratio(rate(decide, TARGETS_AT), rate(echo, TARGETS_AT)),
        "api_vs_ceiling": ratio(rate(by["decide_api"], TARGETS_AT), rate(echo, TARGETS_AT)),
        "decide_vs_peer": ratio(rate(decide, TARGETS_AT), rate(pair, TARGETS_AT)),
        "p99_vs_ceiling": ratio(median(decide, TARGETS_AT, "p99"), median(echo, TARGETS_AT, "p99")),
        "rank100_ms": handler["p50_ms"] if handler else rank_e2e,
        "rank100_source": ("handler p50 inside the Decision process (its gRPC server span, every call traced)"
                           if handler else "end-to-end p50 at the generator (no server spans arrived)"),
        "rank100_end_to_end_p50_ms": rank_e2e,
        "rank100_traced_end_to_end_p50_ms": median(rank_traced, 1, "p50"),
        **floor_figures(plan.floor_runs),
        "workers_scaling": ratio(rate(decide), rate(by["decide_w1"])) if "decide_w1" in by else None,
        "workers_scaling_reason": scaling_reason,
        "ceiling_scaling": ratio(rate(echo), rate(by["echo_w1"])) if "echo_w1" in by else None,
        "tracing_cost_pct": (1 - tracing) * 100 if tracing is not None else None,
        "durability_os_vs_fsync": ratio(rate(by["decide_os"]), rate(decide)),
        "durability_os_vs_fsync_p50_c1": ratio(median(by["decide_os"], 1, "p50"), median(decide, 1, "p50")),
        "decide_batch_decisions_per_s": (median(batch, BATCH_CONCURRENCY, "calls_per_s") or 0) * batch_size,
        "decide_batch_vs_decide": ratio((median(batch, BATCH_CONCURRENCY, "calls_per_s") or 0) * batch_size,
                                        rate(decide)),
        "per_round": round_ranges(plan),
        "definitions": {
            "decide_vs_ceiling": f"Decide calls/s / echo calls/s at concurrency {TARGETS_AT}, same process count",
            "api_vs_ceiling": f"Decide's gRPC layer with a canned answer, calls/s / echo calls/s at concurrency "
                              f"{TARGETS_AT}, same process count (decide_vs_ceiling's baseline: what is left once "
                              "authentication, admission and the protobuf work are paid)",
            "decide_vs_peer": f"Decide calls/s / peer decisions/s at concurrency {TARGETS_AT}",
            "p99_vs_ceiling": f"Decide p99 / echo p99 at concurrency {TARGETS_AT}",
            "rank100_ms": "p50 of one Decide ranking 100 candidates (see rank100_source)",
            "rank100_floor_ms": "p50 of the ranking's feature read, CatBoost, record JSON and write + fdatasync, one "
                                "after another in one process (benchmarks/floor.py; rank100_ms's baseline), median "
                                "of the rounds",
            "workers_scaling": f"Decide calls/s with the default workers / with --workers 1, concurrency {SATURATED_AT}",
            "ceiling_scaling": f"echo calls/s with as many processes as Decide / with one, concurrency {SATURATED_AT} "
                               "(workers_scaling's baseline: what the cores the generator leaves give any server)",
            "tracing_cost": f"1 - Decide calls/s traced (1%) / untraced, concurrency {SATURATED_AT}",
            "durability_os_vs_fsync": f"Decide calls/s acknowledging once the OS has the bytes / after fsync, "
                                      f"concurrency {SATURATED_AT}",
            "durability_os_vs_fsync_p50_c1": "Decide p50 in os mode / in fsync mode, concurrency 1",
        },
    }


def floor_figures(runs: list[dict]) -> dict:
    """The ranking floor's p50 (ms) and its parts' (us), each the median of the rounds."""
    if not runs:
        return {"rank100_floor_ms": None, "rank100_floor_parts_us": {}}
    parts = {name: statistics.median(run["p50_us"][name] for run in runs) for name in runs[0]["p50_us"]}
    return {"rank100_floor_ms": parts.pop("total") / 1000, "rank100_floor_parts_us": parts}


def baselines_line(s: dict) -> str:
    """What three targets are held against, beside the BENCH RESULT line: how far a Decide
    call with nothing to decide gets, how far more processes take the echo, and the ranking's
    floor."""
    return (f"baselines from this run: api_vs_ceiling={_fmt(s.get('api_vs_ceiling'))} (beside decide_vs_ceiling) "
            f"ceiling_scaling={_fmt(s.get('ceiling_scaling'))} (beside workers_scaling) "
            f"rank100_floor_ms={_fmt(s.get('rank100_floor_ms'))} (beside rank100_ms)")


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def ranges_line(s: dict) -> str:
    """The headline ratios' lowest and highest of the rounds, printed above the line of
    their medians (rank100_ms is one figure for all rounds)."""
    parts = []
    for name, values in s["per_round"].items():
        if values and name == "tracing_cost_pct":
            parts.append(f"tracing_cost={_fmt(min(values), 1)}..{_fmt(max(values), 1)}%")
        elif values:
            parts.append(f"{name}={_fmt(min(values))}..{_fmt(max(values))}")
    return "each round's ratios, lowest..highest: " + " ".join(parts)


def bench_line(s: dict) -> str:
    return ("BENCH RESULT "
            f"decide_vs_ceiling={_fmt(s['decide_vs_ceiling'])} decide_vs_peer={_fmt(s['decide_vs_peer'])} "
            f"p99_vs_ceiling={_fmt(s['p99_vs_ceiling'])} rank100_ms={_fmt(s['rank100_ms'])} "
            f"workers_scaling={_fmt(s['workers_scaling'])} tracing_cost={_fmt(s['tracing_cost_pct'], 1)}%")


def print_tables(plan: Plan, spans: dict, summary: dict, workers: int) -> None:
    by = {w.key: w for w in plan.compared}
    # (figure, name, digits, whether a ratio of it means something)
    figures = (("p50", "p50 ms", 2, True), ("p99", "p99 ms", 2, True), ("calls_per_s", "calls/s", 0, True),
               ("calls_per_server_cpu_s", "calls per server CPU-s", 0, True),
               ("generator_share", "generator CPU/server CPU", 2, False),
               ("others_cores", "others' cores busy", 2, False))
    if any(run.get("shed") for w in plan.compared for runs in w.runs.values() for run in runs):
        figures += (("shed_per_call", "shed, retried (per call)", 2, False),)
    # (title, the figure's column, then (column, ratio's name, ratio = first / second))
    tables = [("Decide beside its baselines", "decide", [("echo", "Decide/echo", ("decide", "echo")),
                                                         ("decide_api", "Decide/API", ("decide", "decide_api")),
                                                         ("pair", "Decide/peer", ("decide", "pair"))]),
              ("Decide beside its variants", "decide", [("decide_traced", "traced/off", ("decide_traced", "decide"))]
               + ([("decide_w1", "Decide/w1", ("decide", "decide_w1"))] if "decide_w1" in by else [])
               + [("decide_os", "os/fsync", ("decide_os", "decide"))])]
    if "echo_w1" in by:  # workers_scaling's baseline: the echo's own
        tables.append(("The echo beside one process", "echo", [("echo_w1", "echo/w1", ("echo", "echo_w1"))]))
    for title, first, columns in tables:
        print(f"\n{title} (median of the rounds)")
        header = f"{'c':>3}  {'figure':<24}{by[first].label.split(' (')[0]:>10}"
        for key, ratio_name, _ in columns:
            header += f"{_column_name(by[key]):>16}{ratio_name:>12}"
        print(header)
        for concurrency in CONCURRENCY:
            for key, name, digits, compare in figures:
                line = f"{concurrency:>3}  {name:<24}{_fmt(median(by[first], concurrency, key), digits):>10}"
                for other, _, (top, bottom) in columns:
                    value = ratio(median(by[top], concurrency, key), median(by[bottom], concurrency, key))
                    line += f"{_fmt(median(by[other], concurrency, key), digits):>16}"
                    line += f"{_fmt(value, 2, 'x') if compare else '':>12}"
                print(line)
    print("  columns: " + "; ".join(w.label for w in plan.compared))
    print("  others' cores busy: CPU the rest of the machine used during the calls (/proc/stat), per second")
    if figures[-1][0] == "shed_per_call":
        print("  shed: answers of RESOURCE_EXHAUSTED, each call sent again after the server's RetryInfo hint "
              "(its latency includes the wait)")
    print(f"\nOther figures (Decide with {workers} process{'es' if workers > 1 else ''})")
    batch_rate = summary["decide_batch_decisions_per_s"]
    print(f"  DecideBatch of {plan.batch_size}, {BATCH_CONCURRENCY} concurrent calls: {_fmt(batch_rate, 0)} "
          f"decisions/s ({_fmt(summary['decide_batch_vs_decide'], 2)}x Decide's calls/s at c{SATURATED_AT}), "
          f"p50 {_fmt(median(plan.batch, BATCH_CONCURRENCY, 'p50'))} ms a call")
    print(f"  ranking {workloads.RANKED} candidates, one call at a time: end-to-end p50 "
          f"{_fmt(summary['rank100_end_to_end_p50_ms'])} ms (traced process: "
          f"{_fmt(summary['rank100_traced_end_to_end_p50_ms'])} ms)")
    for use_case, label in ((workloads.RANKING, f"ranking {workloads.RANKED}, every call traced"),
                            (workloads.NOTIFICATIONS, "notification Decide under load, the 1% sampled")):
        stages = spans.get(use_case)
        if stages:
            parts = ", ".join(f"{name.removeprefix('looper.')} {v['p50_ms']:.2f}" for name, v in stages.items())
            print(f"  server spans, {label} (p50 ms, n={stages.get('handler', {}).get('n', 0)}): {parts}")
    print(f"  rank100_ms is the {summary['rank100_source']}")
    floor = summary["rank100_floor_ms"]
    if floor is not None:
        parts = " + ".join(f"{name} {us / 1000:.2f}" for name, us in summary["rank100_floor_parts_us"].items())
        print(f"  its floor, the parts no rewrite of Looper's Python takes out, in one process (benchmarks/floor.py): "
              f"{_fmt(floor)} ms p50 ({parts} ms, each part's p50)")
    print(f"  durability: LOOPER_DURABILITY=os gives {_fmt(summary['durability_os_vs_fsync'])}x the calls/s of fsync "
          f"before the ack at c{SATURATED_AT}, and {_fmt(summary['durability_os_vs_fsync_p50_c1'])}x its p50 at c1")
    if summary["workers_scaling"] is None:
        print(f"  workers_scaling n/a: {summary['workers_scaling_reason']}")
    else:
        print(f"  workers: Decide with {workers} processes makes {_fmt(summary['workers_scaling'])}x the calls/s of one "
              f"at c{SATURATED_AT}; the echo makes {_fmt(summary['ceiling_scaling'])}x (the same generator shares the "
              f"cores: its baseline)")


def _column_name(workload: Workload) -> str:
    return {"echo": "echo", "pair": "peer", "decide_traced": "tracing 1%", "decide_w1": "--workers 1",
            "decide_os": "durability os", "echo_w1": "1 process", "decide_api": "canned answer"}[workload.key]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_facts() -> dict:
    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    from importlib.metadata import version as package

    return {"cpus": os.cpu_count(), "loadavg_start": loadavg(), "kernel": platform.release(),
            "python": platform.python_version(), "go": version(["go", "version"]),
            "commit": version(["git", "rev-parse", "--short", "HEAD"]),
            "uncommitted": version(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines(),
            "packages": {p: package(p) for p in ("grpcio", "feast", "catboost", "opentelemetry-sdk")},
            "peer_packages": version([str(servers.PEERS_VENV / "bin" / "python"), "-c",
                                      "import mlserver, catboost; print('mlserver', mlserver.__version__, "
                                      "'catboost', catboost.__version__)"])}


if __name__ == "__main__":
    sys.exit(main())
