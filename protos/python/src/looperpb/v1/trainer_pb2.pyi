import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from looperpb.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_RUN_STATE_UNSPECIFIED: _ClassVar[TrainingRunState]
    TRAINING_RUN_STATE_QUEUED: _ClassVar[TrainingRunState]
    TRAINING_RUN_STATE_RUNNING: _ClassVar[TrainingRunState]
    TRAINING_RUN_STATE_SUCCEEDED: _ClassVar[TrainingRunState]
    TRAINING_RUN_STATE_FAILED: _ClassVar[TrainingRunState]

class TrainingTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_TRIGGER_UNSPECIFIED: _ClassVar[TrainingTrigger]
    TRAINING_TRIGGER_MANUAL: _ClassVar[TrainingTrigger]
    TRAINING_TRIGGER_MIN_ROWS: _ClassVar[TrainingTrigger]
    TRAINING_TRIGGER_SCHEDULE: _ClassVar[TrainingTrigger]

class ModelStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STAGE_UNSPECIFIED: _ClassVar[ModelStage]
    MODEL_STAGE_CANDIDATE: _ClassVar[ModelStage]
    MODEL_STAGE_LIVE: _ClassVar[ModelStage]
    MODEL_STAGE_RETIRED: _ClassVar[ModelStage]
    MODEL_STAGE_SHADOW: _ClassVar[ModelStage]
    MODEL_STAGE_CANARY: _ClassVar[ModelStage]
    MODEL_STAGE_ROLLED_BACK: _ClassVar[ModelStage]

class ExperimentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_KIND_UNSPECIFIED: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_BLUEPRINT: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_CANARY: _ClassVar[ExperimentKind]
    EXPERIMENT_KIND_TUNING: _ClassVar[ExperimentKind]

class ExperimentVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_VERDICT_UNSPECIFIED: _ClassVar[ExperimentVerdict]
    EXPERIMENT_VERDICT_CONTINUE: _ClassVar[ExperimentVerdict]
    EXPERIMENT_VERDICT_PROMOTE: _ClassVar[ExperimentVerdict]
    EXPERIMENT_VERDICT_ROLLBACK: _ClassVar[ExperimentVerdict]
    EXPERIMENT_VERDICT_INCONCLUSIVE: _ClassVar[ExperimentVerdict]
    EXPERIMENT_VERDICT_STOPPED: _ClassVar[ExperimentVerdict]

class DeletionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_KIND_UNSPECIFIED: _ClassVar[DeletionKind]
    DELETION_KIND_SUBJECT: _ClassVar[DeletionKind]
    DELETION_KIND_USE_CASE: _ClassVar[DeletionKind]

class DeletionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_STATE_UNSPECIFIED: _ClassVar[DeletionState]
    DELETION_STATE_PENDING: _ClassVar[DeletionState]
    DELETION_STATE_RUNNING: _ClassVar[DeletionState]
    DELETION_STATE_DONE: _ClassVar[DeletionState]
    DELETION_STATE_FAILED: _ClassVar[DeletionState]
TRAINING_RUN_STATE_UNSPECIFIED: TrainingRunState
TRAINING_RUN_STATE_QUEUED: TrainingRunState
TRAINING_RUN_STATE_RUNNING: TrainingRunState
TRAINING_RUN_STATE_SUCCEEDED: TrainingRunState
TRAINING_RUN_STATE_FAILED: TrainingRunState
TRAINING_TRIGGER_UNSPECIFIED: TrainingTrigger
TRAINING_TRIGGER_MANUAL: TrainingTrigger
TRAINING_TRIGGER_MIN_ROWS: TrainingTrigger
TRAINING_TRIGGER_SCHEDULE: TrainingTrigger
MODEL_STAGE_UNSPECIFIED: ModelStage
MODEL_STAGE_CANDIDATE: ModelStage
MODEL_STAGE_LIVE: ModelStage
MODEL_STAGE_RETIRED: ModelStage
MODEL_STAGE_SHADOW: ModelStage
MODEL_STAGE_CANARY: ModelStage
MODEL_STAGE_ROLLED_BACK: ModelStage
EXPERIMENT_KIND_UNSPECIFIED: ExperimentKind
EXPERIMENT_KIND_BLUEPRINT: ExperimentKind
EXPERIMENT_KIND_CANARY: ExperimentKind
EXPERIMENT_KIND_TUNING: ExperimentKind
EXPERIMENT_VERDICT_UNSPECIFIED: ExperimentVerdict
EXPERIMENT_VERDICT_CONTINUE: ExperimentVerdict
EXPERIMENT_VERDICT_PROMOTE: ExperimentVerdict
EXPERIMENT_VERDICT_ROLLBACK: ExperimentVerdict
EXPERIMENT_VERDICT_INCONCLUSIVE: ExperimentVerdict
EXPERIMENT_VERDICT_STOPPED: ExperimentVerdict
DELETION_KIND_UNSPECIFIED: DeletionKind
DELETION_KIND_SUBJECT: DeletionKind
DELETION_KIND_USE_CASE: DeletionKind
DELETION_STATE_UNSPECIFIED: DeletionState
DELETION_STATE_PENDING: DeletionState
DELETION_STATE_RUNNING: DeletionState
DELETION_STATE_DONE: DeletionState
DELETION_STATE_FAILED: DeletionState

class Blueprint(_message.Message):
    __slots__ = ("use_case", "version", "decision_type", "spec_yaml", "spec_sha256", "create_time")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    SPEC_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    version: int
    decision_type: _types_pb2.DecisionType
    spec_yaml: str
    spec_sha256: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, use_case: _Optional[str] = ..., version: _Optional[int] = ..., decision_type: _Optional[_Union[_types_pb2.DecisionType, str]] = ..., spec_yaml: _Optional[str] = ..., spec_sha256: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApplyBlueprintRequest(_message.Message):
    __slots__ = ("spec_yaml",)
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    spec_yaml: str
    def __init__(self, spec_yaml: _Optional[str] = ...) -> None: ...

class ApplyBlueprintResponse(_message.Message):
    __slots__ = ("blueprint", "created")
    BLUEPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    blueprint: Blueprint
    created: bool
    def __init__(self, blueprint: _Optional[_Union[Blueprint, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetBlueprintRequest(_message.Message):
    __slots__ = ("use_case", "version")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    version: int
    def __init__(self, use_case: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetBlueprintResponse(_message.Message):
    __slots__ = ("blueprint",)
    BLUEPRINT_FIELD_NUMBER: _ClassVar[int]
    blueprint: Blueprint
    def __init__(self, blueprint: _Optional[_Union[Blueprint, _Mapping]] = ...) -> None: ...

class ListBlueprintsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBlueprintsResponse(_message.Message):
    __slots__ = ("blueprints", "next_page_token")
    BLUEPRINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    blueprints: _containers.RepeatedCompositeFieldContainer[Blueprint]
    next_page_token: str
    def __init__(self, blueprints: _Optional[_Iterable[_Union[Blueprint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TrainingRun(_message.Message):
    __slots__ = ("run_id", "use_case", "blueprint_version", "state", "trigger", "create_time", "end_time", "model_version", "promoted", "error", "metrics", "live_metrics", "traceparent")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LiveMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LIVE_METRICS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    use_case: str
    blueprint_version: int
    state: TrainingRunState
    trigger: TrainingTrigger
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    model_version: str
    promoted: bool
    error: str
    metrics: _containers.ScalarMap[str, float]
    live_metrics: _containers.ScalarMap[str, float]
    traceparent: str
    def __init__(self, run_id: _Optional[str] = ..., use_case: _Optional[str] = ..., blueprint_version: _Optional[int] = ..., state: _Optional[_Union[TrainingRunState, str]] = ..., trigger: _Optional[_Union[TrainingTrigger, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_version: _Optional[str] = ..., promoted: _Optional[bool] = ..., error: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., live_metrics: _Optional[_Mapping[str, float]] = ..., traceparent: _Optional[str] = ...) -> None: ...

class StartTrainingRunRequest(_message.Message):
    __slots__ = ("use_case", "force_promote")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    FORCE_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    force_promote: bool
    def __init__(self, use_case: _Optional[str] = ..., force_promote: _Optional[bool] = ...) -> None: ...

class StartTrainingRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class GetTrainingRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetTrainingRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = ("use_case", "page_size", "page_token")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    page_size: int
    page_token: str
    def __init__(self, use_case: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ModelStageChange(_message.Message):
    __slots__ = ("stage", "reason", "change_time")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    stage: ModelStage
    reason: str
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, stage: _Optional[_Union[ModelStage, str]] = ..., reason: _Optional[str] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("use_case", "version", "blueprint_version", "run_id", "stage", "metrics", "create_time", "data_start_time", "data_end_time", "row_count", "stage_history")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DATA_START_TIME_FIELD_NUMBER: _ClassVar[int]
    DATA_END_TIME_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    STAGE_HISTORY_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    version: str
    blueprint_version: int
    run_id: str
    stage: ModelStage
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    data_start_time: _timestamp_pb2.Timestamp
    data_end_time: _timestamp_pb2.Timestamp
    row_count: int
    stage_history: _containers.RepeatedCompositeFieldContainer[ModelStageChange]
    def __init__(self, use_case: _Optional[str] = ..., version: _Optional[str] = ..., blueprint_version: _Optional[int] = ..., run_id: _Optional[str] = ..., stage: _Optional[_Union[ModelStage, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., row_count: _Optional[int] = ..., stage_history: _Optional[_Iterable[_Union[ModelStageChange, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("use_case", "page_size", "page_token")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    page_size: int
    page_token: str
    def __init__(self, use_case: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PromoteModelRequest(_message.Message):
    __slots__ = ("use_case", "model_version")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    model_version: str
    def __init__(self, use_case: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class PromoteModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class RollbackModelRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class RollbackModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class PauseUseCaseRequest(_message.Message):
    __slots__ = ("use_case", "reason")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    reason: str
    def __init__(self, use_case: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseUseCaseResponse(_message.Message):
    __slots__ = ("paused",)
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    def __init__(self, paused: _Optional[bool] = ...) -> None: ...

class ResumeUseCaseRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class ResumeUseCaseResponse(_message.Message):
    __slots__ = ("paused",)
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    def __init__(self, paused: _Optional[bool] = ...) -> None: ...

class GetExperimentReportRequest(_message.Message):
    __slots__ = ("use_case", "experiment_id")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    experiment_id: str
    def __init__(self, use_case: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class GetExperimentReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: ExperimentReport
    def __init__(self, report: _Optional[_Union[ExperimentReport, _Mapping]] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class ArmReport(_message.Message):
    __slots__ = ("name", "share", "model", "policy", "decisions", "labeled_decisions", "outcomes", "value", "value_ci", "value_cs", "diff", "diff_ci", "diff_cs", "diff_p_value", "outcome_means", "policy_choices")
    class PolicyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class OutcomeMeansEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PolicyChoicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    LABELED_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_CI_FIELD_NUMBER: _ClassVar[int]
    VALUE_CS_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    DIFF_CI_FIELD_NUMBER: _ClassVar[int]
    DIFF_CS_FIELD_NUMBER: _ClassVar[int]
    DIFF_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_MEANS_FIELD_NUMBER: _ClassVar[int]
    POLICY_CHOICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    share: float
    model: str
    policy: _containers.ScalarMap[str, float]
    decisions: int
    labeled_decisions: int
    outcomes: int
    value: float
    value_ci: Interval
    value_cs: Interval
    diff: float
    diff_ci: Interval
    diff_cs: Interval
    diff_p_value: float
    outcome_means: _containers.ScalarMap[str, float]
    policy_choices: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., share: _Optional[float] = ..., model: _Optional[str] = ..., policy: _Optional[_Mapping[str, float]] = ..., decisions: _Optional[int] = ..., labeled_decisions: _Optional[int] = ..., outcomes: _Optional[int] = ..., value: _Optional[float] = ..., value_ci: _Optional[_Union[Interval, _Mapping]] = ..., value_cs: _Optional[_Union[Interval, _Mapping]] = ..., diff: _Optional[float] = ..., diff_ci: _Optional[_Union[Interval, _Mapping]] = ..., diff_cs: _Optional[_Union[Interval, _Mapping]] = ..., diff_p_value: _Optional[float] = ..., outcome_means: _Optional[_Mapping[str, float]] = ..., policy_choices: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExperimentReport(_message.Message):
    __slots__ = ("use_case", "experiment_id", "kind", "control", "arms", "srm_p_value", "srm_detected", "verdict", "reason", "start_time", "end_time", "blueprint_version", "confidence")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    SRM_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SRM_DETECTED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    experiment_id: str
    kind: ExperimentKind
    control: str
    arms: _containers.RepeatedCompositeFieldContainer[ArmReport]
    srm_p_value: float
    srm_detected: bool
    verdict: ExperimentVerdict
    reason: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    blueprint_version: int
    confidence: float
    def __init__(self, use_case: _Optional[str] = ..., experiment_id: _Optional[str] = ..., kind: _Optional[_Union[ExperimentKind, str]] = ..., control: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[ArmReport, _Mapping]]] = ..., srm_p_value: _Optional[float] = ..., srm_detected: _Optional[bool] = ..., verdict: _Optional[_Union[ExperimentVerdict, str]] = ..., reason: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., blueprint_version: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class UseCase(_message.Message):
    __slots__ = ("use_case", "blueprint_version", "decision_type", "paused", "pause_reason", "live_model_version")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    LIVE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    blueprint_version: int
    decision_type: _types_pb2.DecisionType
    paused: bool
    pause_reason: str
    live_model_version: str
    def __init__(self, use_case: _Optional[str] = ..., blueprint_version: _Optional[int] = ..., decision_type: _Optional[_Union[_types_pb2.DecisionType, str]] = ..., paused: _Optional[bool] = ..., pause_reason: _Optional[str] = ..., live_model_version: _Optional[str] = ...) -> None: ...

class ListUseCasesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUseCasesResponse(_message.Message):
    __slots__ = ("use_cases", "next_page_token")
    USE_CASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    use_cases: _containers.RepeatedCompositeFieldContainer[UseCase]
    next_page_token: str
    def __init__(self, use_cases: _Optional[_Iterable[_Union[UseCase, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletionCounts(_message.Message):
    __slots__ = ("decision_records", "outcome_records", "joined_decisions", "joined_outcomes", "training_rows", "online_feature_rows", "offline_feature_rows", "index_entries", "segments", "blueprint_versions", "models", "training_runs", "experiments")
    DECISION_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_RECORDS_FIELD_NUMBER: _ClassVar[int]
    JOINED_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    JOINED_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ROWS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FEATURE_ROWS_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FEATURE_ROWS_FIELD_NUMBER: _ClassVar[int]
    INDEX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUNS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    decision_records: int
    outcome_records: int
    joined_decisions: int
    joined_outcomes: int
    training_rows: int
    online_feature_rows: int
    offline_feature_rows: int
    index_entries: int
    segments: int
    blueprint_versions: int
    models: int
    training_runs: int
    experiments: int
    def __init__(self, decision_records: _Optional[int] = ..., outcome_records: _Optional[int] = ..., joined_decisions: _Optional[int] = ..., joined_outcomes: _Optional[int] = ..., training_rows: _Optional[int] = ..., online_feature_rows: _Optional[int] = ..., offline_feature_rows: _Optional[int] = ..., index_entries: _Optional[int] = ..., segments: _Optional[int] = ..., blueprint_versions: _Optional[int] = ..., models: _Optional[int] = ..., training_runs: _Optional[int] = ..., experiments: _Optional[int] = ...) -> None: ...

class Deletion(_message.Message):
    __slots__ = ("deletion_id", "request_id", "kind", "use_case", "subject", "subject_sha256", "state", "create_time", "update_time", "end_time", "removed", "waiting", "waiting_reason", "error", "requested_by")
    class SubjectEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DELETION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SHA256_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    deletion_id: str
    request_id: str
    kind: DeletionKind
    use_case: str
    subject: _containers.ScalarMap[str, str]
    subject_sha256: str
    state: DeletionState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    removed: DeletionCounts
    waiting: DeletionCounts
    waiting_reason: str
    error: str
    requested_by: str
    def __init__(self, deletion_id: _Optional[str] = ..., request_id: _Optional[str] = ..., kind: _Optional[_Union[DeletionKind, str]] = ..., use_case: _Optional[str] = ..., subject: _Optional[_Mapping[str, str]] = ..., subject_sha256: _Optional[str] = ..., state: _Optional[_Union[DeletionState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., removed: _Optional[_Union[DeletionCounts, _Mapping]] = ..., waiting: _Optional[_Union[DeletionCounts, _Mapping]] = ..., waiting_reason: _Optional[str] = ..., error: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class DeleteUseCaseRequest(_message.Message):
    __slots__ = ("use_case", "request_id", "reason")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    request_id: str
    reason: str
    def __init__(self, use_case: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteUseCaseResponse(_message.Message):
    __slots__ = ("deletion",)
    DELETION_FIELD_NUMBER: _ClassVar[int]
    deletion: Deletion
    def __init__(self, deletion: _Optional[_Union[Deletion, _Mapping]] = ...) -> None: ...

class DeleteSubjectDataRequest(_message.Message):
    __slots__ = ("use_case", "subject", "request_id")
    class SubjectEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    subject: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, use_case: _Optional[str] = ..., subject: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteSubjectDataResponse(_message.Message):
    __slots__ = ("deletion",)
    DELETION_FIELD_NUMBER: _ClassVar[int]
    deletion: Deletion
    def __init__(self, deletion: _Optional[_Union[Deletion, _Mapping]] = ...) -> None: ...

class GetDeletionRequest(_message.Message):
    __slots__ = ("deletion_id",)
    DELETION_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_id: str
    def __init__(self, deletion_id: _Optional[str] = ...) -> None: ...

class GetDeletionResponse(_message.Message):
    __slots__ = ("deletion",)
    DELETION_FIELD_NUMBER: _ClassVar[int]
    deletion: Deletion
    def __init__(self, deletion: _Optional[_Union[Deletion, _Mapping]] = ...) -> None: ...
