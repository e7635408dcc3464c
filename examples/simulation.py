"""What the simulated products of the examples share: each decision judged by the
simulator's truth, outcomes reported when they happen, the two phases (the default policy
while Looper collects data and trains itself, then the learned policy), and the comparison
with its 95% confidence interval and its RESULT line.

A simulated product implements ``Product``: ``decide(index)`` makes the product's
``index``-th decision through the Looper client (the same subject and context whatever the
policy, drawn from a seeded generator), acts on it, schedules what comes of it on a
``DelayedFeedback``, and returns the decision ``Judged`` by the truth: the expected product
value of what was done, and of what the best policy (which sees everything the simulator
knows) would have done for the same subject.
"""

from __future__ import annotations

import argparse
import heapq
import math
import shutil
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from looper import LooperClient
from looperpb.v1 import decision_pb2, feedback_pb2, trainer_pb2

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Judged:
    """One decision as the simulator's truth judges it."""

    value: float  # the expected product value of what the product did
    best: float  # the expected product value of the best policy's choice for the same subject
    decision: decision_pb2.Decision


class Product(Protocol):
    use_case: str
    feedback: "DelayedFeedback"

    def decide(self, index: int) -> Judged:
        """Makes the product's ``index``-th decision through Looper and acts on it."""


@dataclass
class PhaseResult:
    """The decisions of one phase, as the truth values them."""

    name: str
    values: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    model_decisions: int = 0
    explorations: int = 0
    model_versions: set[str] = field(default_factory=set)

    def add(self, judged: Judged) -> None:
        self.values.append(judged.value)
        self.best.append(judged.best)
        self.model_decisions += not judged.decision.is_default
        self.explorations += judged.decision.is_exploration
        if judged.decision.model_version:
            self.model_versions.add(judged.decision.model_version)

    @property
    def decisions(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def stderr(self) -> float:
        return statistics.stdev(self.values) / math.sqrt(len(self.values)) if len(self.values) > 1 else math.nan

    def ci95(self) -> tuple[float, float]:
        return self.mean - 1.96 * self.stderr, self.mean + 1.96 * self.stderr


@dataclass(frozen=True)
class Comparison:
    """The learned policy against the default one, and both against the best policy."""

    default: PhaseResult
    learned: PhaseResult
    model_version: str

    @property
    def difference(self) -> float:
        return self.learned.mean - self.default.mean

    @property
    def difference_ci95(self) -> tuple[float, float]:
        """The 95% interval of the difference of the two phases' means (independent samples)."""
        half = 1.96 * math.hypot(self.default.stderr, self.learned.stderr)
        return self.difference - half, self.difference + half

    @property
    def best_value(self) -> float:
        """The best policy's value per decision over the subjects of both phases."""
        return statistics.fmean(self.default.best + self.learned.best)

    @property
    def gap_closed(self) -> float:
        """The share of the default's distance to the best policy that the learned one closed."""
        return self.difference / (self.best_value - self.default.mean)

    def result_line(self, example: str) -> str:
        base = abs(self.default.mean)
        return (f"RESULT example={example} default_value={self.default.mean:.4f} "
                f"learned_value={self.learned.mean:.4f} lift={100 * self.difference / base:.1f}% "
                f"ci_low={100 * self.difference_ci95[0] / base:.1f}% model={self.model_version}")


class DelayedFeedback:
    """Reports each outcome when it happens, as the product would: one background thread
    sends whatever is due in one LogFeedbackBatch call, each with its own event time."""

    def __init__(self, client: LooperClient):
        self.client = client
        self._heap: list[tuple[float, int, feedback_pb2.OutcomeEvent]] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._closed = False
        self.sent = 0
        self.failures = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._loop, name="delayed-feedback", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, event: feedback_pb2.OutcomeEvent) -> None:
        """Sends ``event`` in ``delay`` seconds (its event time should say when it happened)."""
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, self._counter, event))
            self._cond.notify()

    def drain(self) -> None:
        """Waits until every scheduled outcome was sent; nothing may be scheduled after."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                due = []
                while self._heap and self._heap[0][0] <= time.monotonic() and len(due) < 500:
                    due.append(heapq.heappop(self._heap)[2])
            try:
                self.client.log_feedback_batch(due)
                self.sent += len(due)
            except Exception as err:  # noqa: BLE001 - counted and shown; the product would retry later
                self.failures += len(due)
                self.last_error = str(err)


class ProductLoop:
    """Runs a product's decisions on a pool of threads, each decision index used once."""

    def __init__(self, product: Product, concurrency: int = 8):
        self.product, self.concurrency = product, concurrency
        self._next = 0

    def run(self, result: PhaseResult, decisions: int, only_default: bool = False) -> PhaseResult:
        """Makes ``decisions`` decisions and adds them to ``result`` (with ``only_default``
        only those answered without a model)."""
        start, self._next = self._next, self._next + decisions
        with ThreadPoolExecutor(self.concurrency) as pool:
            for judged in pool.map(self.product.decide, range(start, start + decisions)):
                if not (only_default and not judged.decision.is_default):
                    result.add(judged)
        return result


def live_model(client: LooperClient, use_case: str) -> trainer_pb2.Model | None:
    return next((m for m in client.list_models(use_case) if m.stage == trainer_pb2.MODEL_STAGE_LIVE), None)


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.3):
    """Polls ``condition`` until it returns something true, or fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def learn_and_compare(client: LooperClient, product: Product, *, phase_one_decisions: int,
                      phase_two_decisions: int, concurrency: int = 8, batch: int = 500,
                      training_timeout: float = 90, say: Callable[[str], None] = print) -> Comparison:
    """Phase one: the default policy, in batches, while Looper logs, joins, trains and
    promotes a model by itself (at most ``phase_one_decisions``, then it waits for the
    model); phase two: ``phase_two_decisions`` by the learned policy."""
    loop = ProductLoop(product, concurrency)
    use_case = product.use_case
    default = PhaseResult("default policy")
    started = time.monotonic()
    model = None
    while model is None and default.decisions < phase_one_decisions:
        loop.run(default, min(batch, phase_one_decisions - default.decisions), only_default=True)
        model = live_model(client, use_case)
        say(f"   {default.decisions} default decisions, {client.join_stats(use_case).joined_decisions} labeled, "
            f"live model: {model.version if model else 'none yet'} ({time.monotonic() - started:.0f}s)")
    if model is None:
        say("   phase one's decisions are made; waiting for Looper to train and promote a model")
        model = wait_for(lambda: live_model(client, use_case), training_timeout, f"a live model of {use_case}")
    say(f"   model {model.version} live after {time.monotonic() - started:.0f}s: "
        + ", ".join(f"{k}={v:.3f}" for k, v in sorted(model.metrics.items())))
    say("== phase two: the learned policy")
    started = time.monotonic()
    learned = loop.run(PhaseResult("learned policy"), phase_two_decisions)
    product.feedback.drain()
    say(f"   {learned.decisions} decisions in {time.monotonic() - started:.0f}s, "
        f"{learned.model_decisions} by the model")
    return Comparison(default, learned, model.version)


def print_table(comparison: Comparison, say: Callable[[str], None] = print) -> None:
    header = (f"{'phase':<16}{'decisions':>10}{'by model':>10}{'explored':>10}"
              f"{'value/decision':>16}{'95% CI':>22}{'best policy':>13}")
    say(header)
    say("-" * len(header))
    for p in (comparison.default, comparison.learned):
        low, high = p.ci95()
        say(f"{p.name:<16}{p.decisions:>10}{p.model_decisions:>10}{p.explorations:>10}"
            f"{p.mean:>16.4f}{f'[{low:.4f}, {high:.4f}]':>22}{statistics.fmean(p.best):>13.4f}")
    say(f"the learned policy closed {100 * comparison.gap_closed:.0f}% of the gap between the default "
        f"({comparison.default.mean:.4f}) and the best policy ({comparison.best_value:.4f})")


def demo_main(example: str, blueprint: Path, make_product: Callable[[LooperClient, int], Product],
              argv: list[str] | None = None, *, summary: str, phase_one_decisions: int,
              phase_two_decisions: int) -> int:
    """The ``make demo EXAMPLE=<example>`` job: a fresh data directory, Looper started on
    it, the blueprint applied, both phases, a table and the RESULT line."""
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / f"demo-{example}")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--phase-one-decisions", type=int, default=phase_one_decisions,
                        help="the most decisions phase one makes before it waits for the model")
    parser.add_argument("--phase-two-decisions", type=int, default=phase_two_decisions)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    from services.launcher import start_looper

    started = time.monotonic()
    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    print(f"== {summary}")
    print("== starting Looper (decision, feedback, trainer) on embedded defaults")
    looper = start_looper(data_dir)
    try:
        with looper.client(timeout=10) as client:
            applied, _ = client.apply_blueprint(blueprint.read_text())
            print(f"== applied blueprint {applied.use_case} v{applied.version}")
            product = make_product(client, args.seed)
            print("== phase one: the default policy while Looper collects data and trains itself")
            comparison = learn_and_compare(client, product, phase_one_decisions=args.phase_one_decisions,
                                           phase_two_decisions=args.phase_two_decisions,
                                           concurrency=args.concurrency)
            stats = client.join_stats(applied.use_case)
    except TimeoutError as err:
        print(f"DEMO FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        looper.stop()
    print_table(comparison)
    print(f"join: {stats.joined_decisions} labeled decisions, {stats.attributed_outcomes} attributed, "
          f"{stats.late_outcomes} late and {stats.orphan_outcomes} orphan outcomes; "
          f"{product.feedback.failures} outcomes failed to send {product.feedback.last_error[:200]}".rstrip())
    print(f"== done in {time.monotonic() - started:.0f}s")
    print(comparison.result_line(example))
    return 0
