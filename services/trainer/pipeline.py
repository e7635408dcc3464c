"""The training pipeline of one run: build the training set from the training table, fit a
CatBoost model, evaluate it and the live model on the same holdout, register the new
version, and promote it when it wins on the product metric."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from services.blueprints.spec import Blueprint
from services.features.store import LooperFeatureStore
from services.labels.training_table import TrainingTable
from services.models.registry import ModelKind, ModelMeta, ModelRegistry
from services.models.runtime import ServingModel
from services.platform import telemetry as otel
from services.platform.errors import FailedPrecondition, LooperError
from services.platform.telemetry import Telemetry
from services.trainer.evaluation import evaluate
from services.trainer.runs import RunState, TrainingRun, now_iso
from services.trainer.training_set import TrainingSet, backfill_features, build_training_set, model_kind

MIN_TRAINING_ROWS = 20
DEFAULT_PARAMS = {"iterations": 300, "depth": 6, "learning_rate": 0.08, "random_seed": 0}


class TrainingPipeline:
    def __init__(self, table: TrainingTable, registry: ModelRegistry, features: LooperFeatureStore | None = None,
                 telemetry: Telemetry | None = None):
        self.table, self.registry, self.features = table, registry, features
        self.telemetry = telemetry or Telemetry()

    def __call__(self, run: TrainingRun, blueprint: Blueprint, force_promote: bool) -> TrainingRun:
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.training_set.build") as span:
            table = self.table.read(run.use_case)
            if len(table) < MIN_TRAINING_ROWS:
                raise LooperError(f"only {len(table)} labeled rows; at least {MIN_TRAINING_ROWS} are needed")
            dataset = build_training_set(blueprint, backfill_features(self.features, blueprint, table))
            train, holdout = dataset.split()
            span.set_attributes({"looper.rows": len(table), "looper.holdout_rows": len(holdout.labels)})
        with tracer.start_as_current_span("looper.fit"):
            model = fit(blueprint, train)
        with tempfile.TemporaryDirectory() as scratch:
            artifact = Path(scratch) / "model.cbm"
            model.save_model(str(artifact))
            fields = dict(
                use_case=run.use_case, blueprint_version=blueprint.version, run_id=run.run_id,
                create_time=now_iso(), kind=model_kind(blueprint), label=blueprint.label.outcome,
                **dataset.input.to_meta(), data_start_time=str(dataset.times.iloc[0]),
                data_end_time=str(dataset.times.iloc[-1]), row_count=len(table), traceparent=run.traceparent)
            with tracer.start_as_current_span("looper.evaluate"):
                candidate = ServingModel(ModelMeta(version="candidate", **fields), artifact)
                base_rate = float(train.targets.mean())
                metrics = evaluate(blueprint, candidate, holdout, base_rate)
                live = self._live_model(run.use_case)
                live_metrics = evaluate(blueprint, live, _encoded_for(live, holdout), base_rate) if live else {}
            with tracer.start_as_current_span("looper.register") as span:
                meta = self.registry.register({**fields, "metrics": metrics},
                                              lambda path: shutil.copyfile(artifact, path))
                promoted = force_promote or wins(metrics, live_metrics)
                if promoted:
                    self.registry.promote(run.use_case, meta.version)
                span.set_attributes({otel.MODEL_VERSION: meta.version, "looper.promoted": promoted})
        return replace(run, state=RunState.SUCCEEDED, model_version=meta.version, promoted=promoted,
                       metrics=metrics, live_metrics=live_metrics, row_count=len(table))

    def _live_model(self, use_case: str) -> ServingModel | None:
        version = self.registry.live_version(use_case)
        if not version:
            return None
        return ServingModel(self.registry.get(use_case, version), self.registry.artifact(use_case, version))


def _encoded_for(model: ServingModel, holdout: TrainingSet) -> TrainingSet:
    """The holdout in the live model's own inputs (it may predate a feature added since):
    the same rows, re-encoded from the values the new model's encoding kept."""
    if model.input == holdout.input:
        return holdout
    frame = holdout.features.reindex(columns=list(model.input.columns))
    return replace(holdout, input=model.input, features=model.input.frame(frame))


def fit(blueprint: Blueprint, train: TrainingSet):
    """Fits the blueprint's CatBoost model on the training part."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    params = {**DEFAULT_PARAMS, **blueprint.model_params, "verbose": False, "allow_writing_files": False}
    if model_kind(blueprint) == ModelKind.CLASSIFIER:
        if len(set(train.targets.tolist())) < 2:
            raise FailedPrecondition("the training data has only one label class; collect more outcomes")
        model = CatBoostClassifier(**params)
    else:
        model = CatBoostRegressor(**params)
    model.fit(train.features, train.targets, cat_features=train.input.categorical_columns)
    return model


def wins(new: dict[str, float], live: dict[str, float]) -> bool:
    """The new model wins on the product metric when both have one, else on AUC/RMSE."""
    if not live:
        return True
    for key, higher_is_better in (("product_value", True), ("auc", True), ("rmse", False)):
        a, b = new.get(key), live.get(key)
        if a is not None and b is not None and a == a and b == b:
            return a > b if higher_is_better else a < b
    return False
