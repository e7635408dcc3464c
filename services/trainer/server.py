"""gRPC adapter of the Trainer service."""

from __future__ import annotations

from looperpb.v1 import trainer_pb2, trainer_pb2_grpc

from services.blueprints.store import BlueprintStore, StoredBlueprint
from services.deletions.requests import DeletionRequests
from services.deletions.store import Deletion
from services.blueprints.spec import blueprint_name
from services.evaluation.sequential import Interval
from services.experiments.controller import ExperimentController
from services.experiments.experiment import ExperimentKind, Verdict
from services.experiments.report import ExperimentResult
from services.models.registry import ModelMeta, ModelRegistry, ModelStage, StageChange
from services.platform.audit import AuditLog
from services.platform.auth import ANY_GRANT, CLUSTER_ADMIN, Need, Role, current_caller, needs
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound
from services.platform.grpc_runtime import ServiceBinding, rpc_method
from services.platform.paging import page
from services.platform.validation import Violations, is_valid_name
from services.platform.wire import iso_timestamp, to_timestamp
from services.trainer.blueprint_applier import BlueprintApplier
from services.trainer.runs import TrainingRun, TrainingRunner, TrainingRunStore

MAX_SPEC_BYTES = 256 * 1024


def blueprint_to_proto(stored: StoredBlueprint) -> trainer_pb2.Blueprint:
    bp = stored.blueprint
    return trainer_pb2.Blueprint(use_case=bp.name, version=bp.version, decision_type=int(bp.decision_type),
                                 spec_yaml=stored.spec_yaml, spec_sha256=bp.digest(),
                                 create_time=to_timestamp(stored.create_time))


def run_to_proto(run: TrainingRun) -> trainer_pb2.TrainingRun:
    return trainer_pb2.TrainingRun(
        run_id=run.run_id, use_case=run.use_case, blueprint_version=run.blueprint_version,
        state=trainer_pb2.TrainingRunState.Value(f"TRAINING_RUN_STATE_{run.state.name}"),
        trigger=trainer_pb2.TrainingTrigger.Value(f"TRAINING_TRIGGER_{run.trigger.name}"),
        create_time=iso_timestamp(run.create_time), end_time=iso_timestamp(run.end_time),
        model_version=run.model_version, promoted=run.promoted, error=run.error,
        metrics=_finite(run.metrics), live_metrics=_finite(run.live_metrics), traceparent=run.traceparent)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if v == v}


def model_to_proto(meta: ModelMeta, stage: ModelStage, history: list[StageChange] = ()) -> trainer_pb2.Model:
    return trainer_pb2.Model(
        use_case=meta.use_case, version=meta.version, blueprint_version=meta.blueprint_version,
        run_id=meta.run_id, stage=int(stage), metrics=_finite(meta.metrics),
        create_time=iso_timestamp(meta.create_time), data_start_time=iso_timestamp(meta.data_start_time),
        data_end_time=iso_timestamp(meta.data_end_time), row_count=meta.row_count,
        stage_history=[trainer_pb2.ModelStageChange(stage=int(c.stage), reason=c.reason,
                                                    change_time=iso_timestamp(c.change_time)) for c in history])


def report_to_proto(result: ExperimentResult) -> trainer_pb2.ExperimentReport:
    experiment = result.experiment
    arms = []
    for arm in result.arms:
        value, comparison = arm.value, arm.comparison
        policy = {k: float(v) for k, v in arm.arm.policy.items() if isinstance(v, (int, float))}
        policy.update({f"{k}.{o}": float(w) for k, v in arm.arm.policy.items() if isinstance(v, dict)
                       for o, w in v.items()})
        choices = {k: str(v) for k, v in arm.arm.policy.items() if isinstance(v, str)}
        arms.append(trainer_pb2.ArmReport(
            name=arm.arm.name, share=arm.arm.share, model=arm.arm.model, policy=policy, policy_choices=choices,
            decisions=arm.activity.decisions, labeled_decisions=value.arm.n, outcomes=arm.activity.outcomes,
            value=_number(value.arm.mean), value_ci=_interval(value.interval), value_cs=_interval(value.sequence),
            diff=_number(comparison.difference.estimate) if comparison else 0.0,
            diff_ci=_interval(comparison.difference.interval) if comparison else None,
            diff_cs=_interval(comparison.sequence) if comparison else None,
            diff_p_value=_number(comparison.difference.p_value) if comparison else 1.0,
            outcome_means=_finite(arm.outcome_means)))
    return trainer_pb2.ExperimentReport(
        use_case=experiment.use_case, experiment_id=experiment.experiment_id,
        kind=trainer_pb2.ExperimentKind.Value(f"EXPERIMENT_KIND_{ExperimentKind(experiment.kind).name}"),
        control=experiment.control, arms=arms, srm_p_value=_number(result.sample_ratio.p_value, 1.0),
        srm_detected=result.sample_ratio.mismatch,
        verdict=trainer_pb2.ExperimentVerdict.Value(f"EXPERIMENT_VERDICT_{Verdict(result.verdict).name}"),
        reason=result.reason, start_time=to_timestamp(experiment.start_time),
        end_time=to_timestamp(experiment.end_time) if experiment.end_time else None,
        blueprint_version=experiment.blueprint_version, confidence=result.confidence)


def deletion_to_proto(deletion: Deletion) -> trainer_pb2.Deletion:
    counts = lambda values: trainer_pb2.DeletionCounts(**{k: v for k, v in values.items() if v})  # noqa: E731
    return trainer_pb2.Deletion(
        deletion_id=deletion.deletion_id, request_id=deletion.request_id, kind=int(deletion.kind),
        use_case=deletion.use_case, subject=deletion.subject, subject_sha256=deletion.subject_sha256,
        state=int(deletion.state),
        create_time=to_timestamp(deletion.request_time), update_time=to_timestamp(deletion.update_time),
        end_time=to_timestamp(deletion.end_time) if deletion.end_time else None,
        removed=counts(deletion.removed), waiting=counts(deletion.waiting), waiting_reason=deletion.waiting_reason,
        error=deletion.error, requested_by=deletion.requested_by)


def _number(value: float, missing: float = 0.0) -> float:
    return value if value == value else missing  # NaN (an empty arm) has no wire form worth sending


def _interval(interval: Interval) -> trainer_pb2.Interval:
    return trainer_pb2.Interval(low=interval.low, high=interval.high)


def _who() -> str:
    caller = current_caller()
    return caller.name if caller else "an operator"


def _require_use_case(use_case: str) -> None:
    v = Violations()
    v.require_name("use_case", use_case)
    v.raise_if_any()


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, blueprints: BlueprintStore, applier: BlueprintApplier, runs: TrainingRunStore,
                 runner: TrainingRunner, registry: ModelRegistry, audit: AuditLog,
                 experiments: ExperimentController | None = None, deletions: DeletionRequests | None = None):
        self.blueprints, self.applier = blueprints, applier
        self.deletions = deletions
        self.experiments = experiments
        self.runs, self.runner, self.registry = runs, runner, registry
        self.audit = audit

    @rpc_method
    def ApplyBlueprint(self, request, context):
        if not request.spec_yaml.strip():
            raise InvalidArgument.single("spec_yaml", "is required")
        if len(request.spec_yaml.encode()) > MAX_SPEC_BYTES:
            raise InvalidArgument.single("spec_yaml", f"must be at most {MAX_SPEC_BYTES} bytes")
        if self.deletions is not None and blueprint_name(request.spec_yaml):
            self.deletions.blocks(blueprint_name(request.spec_yaml))
        try:
            stored, created = self.applier.apply(request.spec_yaml)
        except InvalidArgument as err:  # point at the key inside the document
            raise InvalidArgument([type(v)(f"spec_yaml.{v.field}" if v.field != "spec_yaml" else v.field, v.reason)
                                   for v in err.violations]) from None
        if created:
            self.audit.record("apply_blueprint", stored.blueprint.name, blueprint_version=stored.blueprint.version)
        return trainer_pb2.ApplyBlueprintResponse(blueprint=blueprint_to_proto(stored), created=created)

    @rpc_method
    def GetBlueprint(self, request, context):
        _require_use_case(request.use_case)
        if request.version < 0:
            raise InvalidArgument.single("version", "must be 0 (latest) or a positive version")
        return trainer_pb2.GetBlueprintResponse(
            blueprint=blueprint_to_proto(self.blueprints.get(request.use_case, request.version)))

    @rpc_method
    def ListBlueprints(self, request, context):
        caller = current_caller()
        readable = [n for n in self.blueprints.names() if caller is None or caller.allows(Role.READ, n)]
        names, token = page(readable, str, request.page_size, request.page_token, "blueprints")
        return trainer_pb2.ListBlueprintsResponse(
            blueprints=[blueprint_to_proto(self.blueprints.get(name)) for name in names], next_page_token=token)

    @rpc_method
    def ListUseCases(self, request, context):
        caller = current_caller()
        readable = [n for n in self.blueprints.names() if caller is None or caller.allows(Role.READ, n)]
        names, token = page(readable, str, request.page_size, request.page_token, "use_cases")
        return trainer_pb2.ListUseCasesResponse(use_cases=[self._use_case(n) for n in names], next_page_token=token)

    def _use_case(self, name: str) -> trainer_pb2.UseCase:
        blueprint = self.blueprints.get(name).blueprint
        reason = self.blueprints.pause_reason(name)
        return trainer_pb2.UseCase(use_case=name, blueprint_version=blueprint.version,
                                   decision_type=int(blueprint.decision_type), paused=reason is not None,
                                   pause_reason=reason or "", live_model_version=self.registry.live_version(name) or "")

    @rpc_method
    def StartTrainingRun(self, request, context):
        _require_use_case(request.use_case)
        run = self.runner.start(request.use_case, force_promote=request.force_promote)
        self.audit.record("start_training_run", run.use_case, run_id=run.run_id, force_promote=request.force_promote)
        return trainer_pb2.StartTrainingRunResponse(run=run_to_proto(run))

    @rpc_method
    def GetTrainingRun(self, request, context):
        v = Violations()
        v.require_id("run_id", request.run_id)
        v.raise_if_any()
        return trainer_pb2.GetTrainingRunResponse(run=run_to_proto(self.runs.get(request.run_id)))

    @rpc_method
    def ListTrainingRuns(self, request, context):
        _require_use_case(request.use_case)
        self.blueprints.latest_version(request.use_case)
        runs, token = page(self.runs.list(request.use_case, limit=None), lambda r: f"{r.create_time}|{r.run_id}",
                           request.page_size, request.page_token, f"runs:{request.use_case}", descending=True)
        return trainer_pb2.ListTrainingRunsResponse(runs=[run_to_proto(r) for r in runs], next_page_token=token)

    @rpc_method
    def ListModels(self, request, context):
        _require_use_case(request.use_case)
        self.blueprints.latest_version(request.use_case)
        versions, token = page(self.registry.versions(request.use_case), str, request.page_size, request.page_token,
                               f"models:{request.use_case}", descending=True)
        metas = [self.registry.get(request.use_case, v) for v in versions]
        stages = self.registry.stages(request.use_case, versions)
        return trainer_pb2.ListModelsResponse(
            models=[model_to_proto(m, stage, history) for m, (stage, history) in zip(metas, stages)],
            next_page_token=token)

    @rpc_method
    def PromoteModel(self, request, context):
        _require_use_case(request.use_case)
        if not request.model_version:
            raise InvalidArgument.single("model_version", "is required")
        self.blueprints.latest_version(request.use_case)
        meta = self.registry.promote(request.use_case, request.model_version, f"promoted by {_who()}")
        self.audit.record("promote_model", meta.use_case, model_version=meta.version)
        return trainer_pb2.PromoteModelResponse(model=model_to_proto(meta, ModelStage.LIVE))

    @rpc_method
    def RollbackModel(self, request, context):
        _require_use_case(request.use_case)
        self.blueprints.latest_version(request.use_case)
        meta = self.registry.rollback(request.use_case, f"rolled back by {_who()}")
        self.audit.record("rollback_model", meta.use_case, model_version=meta.version)
        return trainer_pb2.RollbackModelResponse(model=model_to_proto(meta, ModelStage.LIVE))

    @rpc_method
    def PauseUseCase(self, request, context):
        _require_use_case(request.use_case)
        if len(request.reason) > 1000:
            raise InvalidArgument.single("reason", "must be at most 1000 characters")
        self.blueprints.set_paused(request.use_case, True, request.reason)
        self.audit.record("pause_use_case", request.use_case, reason=request.reason)
        return trainer_pb2.PauseUseCaseResponse(paused=True)

    @rpc_method
    def ResumeUseCase(self, request, context):
        _require_use_case(request.use_case)
        self.blueprints.set_paused(request.use_case, False)
        self.audit.record("resume_use_case", request.use_case)
        return trainer_pb2.ResumeUseCaseResponse(paused=False)

    @rpc_method
    def GetExperimentReport(self, request, context):
        _require_use_case(request.use_case)
        if request.experiment_id:
            v = Violations()
            v.require_name("experiment_id", request.experiment_id)
            v.raise_if_any()
        self.blueprints.latest_version(request.use_case)
        result = self.experiments.report(request.use_case, request.experiment_id)
        return trainer_pb2.GetExperimentReportResponse(report=report_to_proto(result))


    @rpc_method
    def DeleteUseCase(self, request, context):
        v = Violations()
        v.require_name("use_case", request.use_case)
        if request.request_id:
            v.require_id("request_id", request.request_id)
        if len(request.reason) > 1000:
            v.add("reason", "must be at most 1000 characters")
        v.raise_if_any()
        deletion, created = self._deletions().delete_use_case(request.use_case, request.request_id, _who())
        self.audit.record("delete_use_case", request.use_case, deletion_id=deletion.deletion_id,
                          request_id=deletion.request_id, created=created, reason=request.reason)
        return trainer_pb2.DeleteUseCaseResponse(deletion=deletion_to_proto(deletion))

    @rpc_method
    def DeleteSubjectData(self, request, context):
        v = Violations()
        v.require_name("use_case", request.use_case)
        if request.request_id:
            v.require_id("request_id", request.request_id)
        if not request.subject:
            v.add("subject", "is required: a value for each of the blueprint's entities")
        elif v.require_at_most("subject", len(request.subject), MAX_SUBJECT_KEYS, "entities"):
            for key, value in request.subject.items():
                if not is_valid_name(key):
                    v.add(f"subject.{key[:64]}", "must name an entity (lower_snake_case)")
                elif not value:
                    v.add(f"subject.{key}", "is required")
        v.raise_if_any()
        deletion, created = self._deletions().delete_subject(request.use_case, dict(request.subject),
                                                             request.request_id, _who())
        # The audit log names the deletion, never the subject's values.
        self.audit.record("delete_subject_data", request.use_case, deletion_id=deletion.deletion_id,
                          request_id=deletion.request_id, created=created, entities=sorted(request.subject))
        return trainer_pb2.DeleteSubjectDataResponse(deletion=deletion_to_proto(deletion))

    @rpc_method
    def GetDeletion(self, request, context):
        v = Violations()
        v.require_id("deletion_id", request.deletion_id)
        v.raise_if_any()
        return trainer_pb2.GetDeletionResponse(deletion=deletion_to_proto(self._deletions().get(request.deletion_id)))

    def _deletions(self) -> DeletionRequests:
        if self.deletions is None:
            raise FailedPrecondition("this Trainer does not carry out deletions")
        return self.deletions


MAX_SUBJECT_KEYS = 16


def auth_rules(blueprints: BlueprintStore, runs: TrainingRunStore, deletions: DeletionRequests | None = None) -> dict:
    def apply_blueprint(request):
        name = blueprint_name(request.spec_yaml)
        if name and name in blueprints.names():
            return [Need(Role.ADMIN, name)]
        return [CLUSTER_ADMIN]  # a new use case (or no name to check yet)

    def run_use_case(request):
        try:
            return [runs.get(request.run_id).use_case]
        except NotFound:
            return [""]  # only a cluster administrator learns that the run does not exist

    def deletion_use_case(request):
        try:
            return [deletions.get(request.deletion_id).use_case] if deletions else [""]
        except (NotFound, InvalidArgument):
            return [""]  # only a cluster administrator learns that the deletion does not exist

    use_case = lambda r: [r.use_case]  # noqa: E731
    return {
        "ApplyBlueprint": apply_blueprint,
        "GetBlueprint": needs(Role.READ, use_case),
        "ListBlueprints": lambda r: [ANY_GRANT],  # the servicer lists only what the caller may read
        "ListUseCases": lambda r: [ANY_GRANT],  # the servicer lists only what the caller may read
        "StartTrainingRun": needs(Role.ADMIN, use_case),
        "GetTrainingRun": needs(Role.READ, run_use_case),
        "ListTrainingRuns": needs(Role.READ, use_case),
        "ListModels": needs(Role.READ, use_case),
        "PromoteModel": needs(Role.ADMIN, use_case),
        "RollbackModel": needs(Role.ADMIN, use_case),
        "PauseUseCase": needs(Role.ADMIN, use_case),
        "ResumeUseCase": needs(Role.ADMIN, use_case),
        "GetExperimentReport": needs(Role.READ, use_case),
        "DeleteUseCase": lambda r: [CLUSTER_ADMIN],
        "DeleteSubjectData": needs(Role.ADMIN, use_case),
        "GetDeletion": needs(Role.ADMIN, deletion_use_case),
    }


def binding(servicer: TrainerServicer, on_shutdown=lambda: None, interceptors: tuple = ()) -> ServiceBinding:
    return ServiceBinding(
        name=trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name,
        servicer=servicer,
        register=trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
        on_shutdown=on_shutdown,
        interceptors=interceptors,
        auth_rules=auth_rules(servicer.blueprints, servicer.runs, servicer.deletions),
    )
