"""The bench harness's own logic, without timing anything: the headline figures and the
BENCH RESULT line from made-up runs, the request-file format the Go generator reads, the
OTLP sink fed by the real exporter, and the process tree whose CPU time a job reads."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench, floor, generator
from benchmarks.otlp_sink import OtlpSink

LINE = re.compile(r"BENCH RESULT decide_vs_ceiling=(\S+) decide_vs_peer=(\S+) p99_vs_ceiling=(\S+) "
                  r"rank100_ms=(\S+) workers_scaling=(\S+) tracing_cost=(\S+)%")


def run(calls_per_s: float, p50: float = 1.0, p99: float = 2.0, errors: int = 0) -> dict:
    return {"calls_per_s": calls_per_s, "latency_ms": {"p50": p50, "p99": p99}, "errors": errors,
            "calls_per_server_cpu_s": 1.0, "client_cpu_s": 0.1, "server_cpu_s": 1.0, "machine_busy_cpu_s": 1.5,
            "elapsed_s": 1.0}


def workload(key: str, by_concurrency: dict[int, list[dict]]) -> bench.Workload:
    return bench.Workload(key, key, [], lambda: [], runs=by_concurrency)


def plan(with_single: bool) -> bench.Plan:
    compared = [
        workload("echo", {16: [run(4500, p99=2.0)], 64: [run(5000), run(7000), run(6000)]}),
        workload("decide", {1: [run(400, p50=1.6)], 16: [run(800, p99=10.0), run(1000, p99=9.0), run(900, p99=12.0)], 64: [run(1000), run(1400), run(1200)]}),
        workload("pair", {16: [run(300)], 64: [run(400)]}),
        workload("decide_api", {16: [run(3000), run(3400)]}),
        workload("decide_traced", {64: [run(1080)]}),
        workload("decide_os", {1: [run(500, p50=0.8)], 64: [run(1500)]}),
    ]
    if with_single:
        compared.append(workload("decide_w1", {64: [run(800)]}))
        compared.append(workload("echo_w1", {64: [run(4000), run(6400), run(5000)]}))
    floor = [{"p50_us": {"feature read": 150.0, "CatBoost": 350.0, "total": 520.0}},
             {"p50_us": {"feature read": 170.0, "CatBoost": 330.0, "total": 480.0}},
             {"p50_us": {"feature read": 140.0, "CatBoost": 380.0, "total": 540.0}}]
    return bench.Plan(compared, workload("batch", {bench.BATCH_CONCURRENCY: [run(20)]}),
                      workload("rank100", {1: [run(100, p50=9.5)]}), workload("rank100_traced", {1: [run(90)]}),
                      floor_runs=floor)


def test_the_headline_figures_are_medians_of_the_rounds_divided_as_defined():
    spans = {"bench_feed": {"handler": {"n": 150, "p50_ms": 7.25}}}
    summary = bench.summarize(plan(with_single=True), spans, "")
    assert summary["decide_vs_ceiling"] == 900 / 4500  # the medians at concurrency 16
    assert summary["decide_vs_peer"] == 900 / 300
    assert summary["api_vs_ceiling"] == 3200 / 4500
    assert summary["p99_vs_ceiling"] == 10.0 / 2.0
    assert summary["rank100_ms"] == 7.25 and "handler" in summary["rank100_source"]
    assert summary["workers_scaling"] == 1200 / 800
    assert summary["ceiling_scaling"] == 6000 / 5000
    assert abs(summary["tracing_cost_pct"] - 10.0) < 1e-9
    assert summary["durability_os_vs_fsync"] == 1500 / 1200 and summary["durability_os_vs_fsync_p50_c1"] == 0.8 / 1.6
    assert summary["decide_batch_decisions_per_s"] == 20 * bench.BATCH_SIZE
    found = LINE.fullmatch(bench.bench_line(summary))
    assert found and found.groups() == ("0.20", "3.00", "5.00", "7.25", "1.50", "10.0")


def test_each_rounds_ratios_pair_the_runs_of_that_round_and_skip_failed_ones():
    summary = bench.summarize(plan(with_single=True), {}, "")
    rounds = summary["per_round"]
    assert rounds["decide_vs_ceiling"] == [800 / 4500]  # the echo ran one round at 16
    assert rounds["api_vs_ceiling"] == [3000 / 4500]
    assert rounds["p99_vs_ceiling"] == [10.0 / 2.0]
    assert rounds["workers_scaling"] == [1000 / 800]
    assert rounds["ceiling_scaling"] == [5000 / 4000, 7000 / 6400, 6000 / 5000]
    assert [round(cost, 9) for cost in rounds["tracing_cost_pct"]] == [-8.0]  # 1 - 1080/1000
    failed = plan(with_single=False)
    failed.compared[1].runs[16][0]["errors"] = 2
    assert bench.round_ranges(failed)["decide_vs_ceiling"] == []
    assert "workers_scaling" not in bench.round_ranges(failed) and "ceiling_scaling" not in bench.round_ranges(failed)


def test_the_ranking_floor_is_the_median_of_the_rounds_beside_rank100():
    summary = bench.summarize(plan(with_single=True), {}, "")
    assert summary["rank100_floor_ms"] == 0.52  # each round's total, not the sum of the parts' medians
    assert summary["rank100_floor_parts_us"] == {"feature read": 150.0, "CatBoost": 350.0}
    assert bench.baselines_line(summary) == ("baselines from this run: api_vs_ceiling=0.71 (beside decide_vs_ceiling) "
                                             "ceiling_scaling=1.20 (beside workers_scaling) "
                                             "rank100_floor_ms=0.52 (beside rank100_ms)")
    assert bench.floor_figures([]) == {"rank100_floor_ms": None, "rank100_floor_parts_us": {}}
    assert "ceiling_scaling=n/a" in bench.baselines_line(bench.summarize(plan(with_single=False), {}, "no flag"))


def test_the_floor_times_each_part_and_their_sum_after_the_warmup():
    now = [0.0]

    def costing(first: float, then: float):
        def work(i: int) -> None:
            now[0] += first if i < 3 else then
        return work

    # as many warm-up runs as counted ones: counted, they would move every median
    timed = floor.time_parts([("read", costing(9.0, 1e-6 * 100)), ("write", costing(9.0, 1e-6 * 300))],
                             calls=3, warmup=3, clock=lambda: now[0])
    assert {name: round(us, 6) for name, us in timed.items()} == {"read": 100.0, "write": 300.0, "total": 400.0}


def test_the_ranges_line_gives_each_ratios_lowest_and_highest_round():
    summary = {"per_round": {"decide_vs_ceiling": [0.31, 0.29, 0.37], "decide_vs_peer": [],
                             "tracing_cost_pct": [-2.5, 7.25]}}
    assert bench.ranges_line(summary) == ("each round's ratios, lowest..highest: decide_vs_ceiling=0.29..0.37 "
                                          "tracing_cost=-2.5..7.2%")


def test_without_workers_or_spans_the_line_says_n_a_and_falls_back_to_end_to_end():
    summary = bench.summarize(plan(with_single=False), {}, "`looper serve --help` lists no --workers flag")
    assert summary["workers_scaling"] is None and "--workers" in summary["workers_scaling_reason"]
    assert summary["rank100_ms"] == 9.5 and "end-to-end" in summary["rank100_source"]
    assert LINE.fullmatch(bench.bench_line(summary)).group(5) == "n/a"


def test_runs_with_failed_calls_are_left_out_of_the_medians():
    failed = workload("decide", {64: [run(1000), run(5, errors=3)]})
    assert bench.median(failed, 64, "calls_per_s") == 1000


def test_requests_are_written_length_prefixed_for_the_generator(tmp_path):
    path = generator.write_requests(tmp_path / "r.bin", [b"ab", b"", b"xyz"])
    data = open(path, "rb").read()
    assert data == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 3) + b"xyz"
    assert generator.read_requests(path) == [b"ab", b"", b"xyz"]


def test_the_sink_keeps_the_spans_the_otlp_exporter_sends():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sink = OtlpSink()
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")))
        with provider.get_tracer("t").start_as_current_span("looper.decide", attributes={"looper.use_case": "u"}):
            pass
        provider.shutdown()
        [span] = sink.snapshot()
        assert span.name == "looper.decide" and span.attributes == {"looper.use_case": "u"}
        assert span.duration_ms >= 0 and len(span.trace_id) == 32
    finally:
        sink.stop()


def test_a_process_tree_holds_the_process_and_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = generator.process_tree(os.getpid())
        assert os.getpid() in tree and child.pid in tree
    finally:
        child.kill()
        child.wait()


def test_a_job_whose_id_prefix_would_cut_its_counter_is_refused_before_the_generator_runs():
    job = generator.Job(name="j", steps=[], concurrency=1, conns=1, calls=1, warmup=0, server_pids=[],
                        id_prefix="x" * (len(generator.UNIQUE) - generator.COUNTER_DIGITS + 1))
    with pytest.raises(ValueError, match="fewer than 9 digits"):
        generator.run(job, binary=Path("/nonexistent/loadgen"))


def test_the_floor_and_the_canned_decide_answer_with_a_decision_the_service_logged(tmp_path):
    from datetime import datetime, timezone

    from services.decisions.log import PREFIX
    from services.decisions.record import DecisionRecord, ScoredCandidate
    from services.platform.data_dir import DecisionPaths
    from services.platform.durable_log import DurableLog

    def logged(use_case: str, decision_id: str, model_version: str, ranked: int = 0) -> dict:
        return DecisionRecord(decision_id=decision_id, use_case=use_case, blueprint_version=1,
                              decide_time=datetime.now(timezone.utc), subject={"user_id": "u1"}, features={},
                              context={}, action="", score=0.5, propensity=1.0, is_exploration=False,
                              model_version=model_version,
                              ranking=tuple(ScoredCandidate(f"item-{i}", 0.5, 1.0) for i in range(ranked))).to_dict()

    paths = DecisionPaths(log=tmp_path / "log", index=tmp_path / "index.sqlite", consumers=tmp_path / "consumers")
    log = DurableLog(paths.log, PREFIX, segment_bytes=1 << 20)
    log.append_many([logged("notifications", "a", "m1"), logged("feed", "default", "", 20),
                     logged("feed", "trained", "m1", 20), logged("feed", "b", "m2", 100),
                     logged("feed", "c", "m2", 100)])
    log.close()
    assert floor.logged_decision(paths, "feed", 100).decision_id == "b"
    assert floor.logged_decision(paths, "feed", 20).decision_id == "trained"
    assert floor.logged_decision(paths, "feed").decision_id == "trained"
    with pytest.raises(LookupError, match="no decision of 'prefetch' by a model ranking 100 candidates in"):
        floor.logged_decision(paths, "prefetch", 100)
