"""The training pipeline of one run: build the training set from the training table, fit a
CatBoost model per label (or, for an uplift version, a meta-learner per label), evaluate it
and the live model on the same holdout, register the new version, and promote it when it
wins on the product metric."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from services.blueprints.spec import Blueprint, LabelSpec
from services.features.store import LooperFeatureStore
from services.labels.training_table import TrainingTable
from services.models.registry import ModelKind, ModelMeta, ModelRegistry, ModelStage, label_file
from services.models.runtime import ServingModel, open_model
from services.platform import telemetry as otel
from services.platform.errors import FailedPrecondition, LooperError
from services.platform.telemetry import Telemetry
from services.trainer.meta_learners import fit_learners, save_learners, uplift_meta, uplift_metrics
from services.trainer.evaluation import evaluate
from services.trainer.runs import RunState, TrainingRun, now_iso
from services.trainer.training_set import TrainingSet, backfill_features, build_training_set, label_kind, model_kind

MIN_TRAINING_ROWS = 20


class TrainingPipeline:
    def __init__(self, table: TrainingTable, registry: ModelRegistry, features: LooperFeatureStore | None = None,
                 telemetry: Telemetry | None = None):
        self.table, self.registry, self.features = table, registry, features
        self.telemetry = telemetry or Telemetry()
        self.stopping = threading.Event()  # set on shutdown: a fit in progress stops at its next iteration

    def __call__(self, run: TrainingRun, blueprint: Blueprint, force_promote: bool) -> TrainingRun:
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.training_set.build") as span:
            table = self.table.read(run.use_case, max_rows=blueprint.retraining.max_rows)
            if len(table) < MIN_TRAINING_ROWS:
                raise LooperError(f"only {len(table)} labeled rows; at least {MIN_TRAINING_ROWS} are needed")
            dataset = build_training_set(blueprint, backfill_features(self.features, blueprint, table))
            train, holdout = dataset.split()
            span.set_attributes({"looper.rows": len(table), "looper.holdout_rows": len(holdout.labels)})
        limit = FitLimit(blueprint.retraining.max_seconds, self.stopping)
        labels = blueprint.predicted_labels
        primary = blueprint.primary_label.outcome
        with tracer.start_as_current_span("looper.fit", attributes={"looper.labels": len(labels),
                                                                "looper.uplift_learner": blueprint.uplift_learner or ""}):
            if blueprint.uplift_learner:  # one meta-learner per label
                learners = fit_learners(blueprint, train, limit)
            else:
                models = {label.outcome: fit_label(blueprint, label, train, limit) for label in labels}
        with tempfile.TemporaryDirectory() as scratch:
            if blueprint.uplift_learner:
                files = save_learners(learners, primary, Path(scratch))  # file name in the version -> file
            else:
                files = {}
                for outcome, model in models.items():
                    files[label_file(primary, outcome)] = Path(scratch) / label_file(primary, outcome)
                    model.save_model(str(files[label_file(primary, outcome)]))
            fields = dict(
                use_case=run.use_case, blueprint_version=blueprint.version, run_id=run.run_id,
                create_time=now_iso(), kind=model_kind(blueprint), label=primary,
                other_labels={label.outcome: label_kind(blueprint, label) for label in labels[1:]},
                **dataset.input.to_meta(), data_start_time=str(dataset.times.iloc[0]),
                data_end_time=str(dataset.times.iloc[-1]), row_count=len(table), traceparent=run.traceparent,
                uplift=uplift_meta(learners, blueprint) if blueprint.uplift_learner else {})
            with tracer.start_as_current_span("looper.evaluate"):
                candidate = open_model(ModelMeta(version="candidate", **fields), files["model.cbm"])
                base_rate = float(train.targets.mean())
                metrics = evaluate(blueprint, candidate, holdout, base_rate)
                live = self._live_model(run.use_case)
                # A live model that lacks a label the blueprint now weighs, or is another kind of
                # model than the blueprint asks for, cannot serve it: the new one wins.
                serves = (live is not None and live.meta.predicts(blueprint.weights, blueprint.primary_label.outcome)
                          and (live.meta.uplift or {}).get("learner") == blueprint.uplift_learner)
                live_metrics = evaluate(blueprint, live, _encoded_for(live, holdout), base_rate) if serves else {}
                if blueprint.uplift_learner:
                    metrics.update(uplift_metrics(blueprint, candidate, holdout))
                    if live_metrics:
                        live_metrics.update(uplift_metrics(blueprint, live, _encoded_for(live, holdout)))
            with tracer.start_as_current_span("looper.register") as span:
                meta = self.registry.register({**fields, "metrics": metrics},
                                              lambda path: shutil.copyfile(files["model.cbm"], path),
                                              extra_files={n: p for n, p in files.items() if n != "model.cbm"})
                promoted = self._deploy(blueprint, meta, metrics, live_metrics, live, force_promote)
                span.set_attributes({otel.MODEL_VERSION: meta.version, "looper.promoted": promoted})
        return replace(run, state=RunState.SUCCEEDED, model_version=meta.version, promoted=promoted,
                       metrics=metrics, live_metrics=live_metrics, row_count=len(table))

    def _deploy(self, blueprint: Blueprint, meta: ModelMeta, metrics: dict, live_metrics: dict,
                live: ServingModel | None, force_promote: bool) -> bool:
        """What a new version's offline result earns it: live at once (forced, the first
        model, or a use case without deployment stages), the shadow stage (or the canary
        stage when shadow is skipped) on the way to live, or nothing (it lost offline, or
        another version is rolling out). Returns whether it went live."""
        use_case, version = meta.use_case, meta.version
        if not force_promote and not wins(metrics, live_metrics):
            self.registry.record_stage(use_case, version, ModelStage.CANDIDATE,
                                       f"lost offline to {live.version if live else 'the live model'}: "
                                       f"{offline_comparison(metrics, live_metrics)}")
            return False
        if force_promote or live is None or blueprint.deployment is None:
            why = "forced" if force_promote else "the first model" if live is None else "won offline"
            self.registry.promote(use_case, version, f"{why}: {offline_comparison(metrics, live_metrics)}")
            return True
        rollout = self.registry.rollout(use_case)
        if rollout is not None:
            self.registry.record_stage(use_case, version, ModelStage.CANDIDATE, f"won offline, but {rollout.version} "
                                       f"is still rolling out: {offline_comparison(metrics, live_metrics)}")
            return False
        stage = ModelStage.SHADOW if blueprint.deployment.shadow_decisions else ModelStage.CANARY
        self.registry.set_rollout(use_case, version, stage, f"won offline against {live.version}: "
                                  f"{offline_comparison(metrics, live_metrics)}", since=now_iso())
        return False

    def _live_model(self, use_case: str) -> ServingModel | None:
        version = self.registry.live_version(use_case)
        if not version:
            return None
        return open_model(self.registry.get(use_case, version), self.registry.artifact(use_case, version))


def _encoded_for(model: ServingModel, holdout: TrainingSet) -> TrainingSet:
    """The holdout in the live model's own inputs (it may predate a feature added since):
    the same rows, re-encoded from the values the new model's encoding kept."""
    if model.input == holdout.input:
        return holdout
    frame = holdout.features.reindex(columns=list(model.input.columns))
    return replace(holdout, input=model.input, features=model.input.frame(frame))


class FitLimit:
    """A CatBoost callback that stops fitting at the run's wall-clock limit or at shutdown;
    the run then fails with the reason (an unfinished model is never registered)."""

    def __init__(self, max_seconds: float, stopping: threading.Event | None = None):
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.stopping = stopping or threading.Event()
        self.reason = ""

    def after_iteration(self, info) -> bool:
        if self.stopping.is_set():
            self.reason = "the Trainer is shutting down"
        elif time.monotonic() > self.deadline:
            self.reason = f"training took longer than retraining.max_seconds ({self.max_seconds:.0f}s)"
        return not self.reason


def fit(blueprint: Blueprint, train: TrainingSet, limit: FitLimit | None = None):
    """Fits the model of the blueprint's primary label."""
    return fit_label(blueprint, blueprint.primary_label, train, limit)


def fit_label(blueprint: Blueprint, label: LabelSpec, train: TrainingSet, limit: FitLimit | None = None):
    """Fits one label's CatBoost model on the training part, within ``limit``."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    limit = limit or FitLimit(blueprint.retraining.max_seconds)
    kind = label_kind(blueprint, label)
    targets = train.targets_of(label.outcome, kind) if train.outcomes else train.targets
    params = {**blueprint.model_params, "verbose": False, "allow_writing_files": False}
    if kind == ModelKind.CLASSIFIER:
        if len(set(targets.tolist())) < 2:
            raise FailedPrecondition(f"the training data of label {label.outcome!r} has only one class; "
                                     "collect more outcomes")
        model = CatBoostClassifier(**params)
    else:
        model = CatBoostRegressor(**params)
    model.fit(train.features, targets, cat_features=train.input.categorical_columns, callbacks=[limit])
    if limit.reason:
        raise FailedPrecondition(f"training stopped: {limit.reason}")
    return model


def offline_comparison(new: dict[str, float], live: dict[str, float]) -> str:
    """The figure the offline gate compared, in words."""
    for key in ("product_value", "auc", "rmse"):
        if new.get(key) is not None and new[key] == new[key]:
            against = f" vs {live[key]:.4f}" if live.get(key) is not None and live[key] == live[key] else ""
            return f"{key} {new[key]:.4f}{against}"
    return "no comparable metric"


def wins(new: dict[str, float], live: dict[str, float]) -> bool:
    """The new model wins on the product metric when both have one, else on AUC/RMSE."""
    if not live:
        return True
    for key, higher_is_better in (("product_value", True), ("auc", True), ("rmse", False)):
        a, b = new.get(key), live.get(key)
        if a is not None and b is not None and a == a and b == b:
            return a > b if higher_is_better else a < b
    return False
