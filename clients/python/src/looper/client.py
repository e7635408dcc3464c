"""The Looper client: ``decide`` at a decision point, ``log_feedback`` when you learn what
happened. Reusable channels per service (several for a service that runs several worker
processes), default deadlines, retries on UNAVAILABLE (safe: every call carries an
idempotency id), TLS and OpenTelemetry propagation."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import grpc
from google.protobuf import timestamp_pb2

from looper.errors import from_rpc_error
from looperpb.values import Scalar, feature_value
from looperpb.v1 import (access_pb2, access_pb2_grpc, decision_pb2, decision_pb2_grpc, feedback_pb2,
                         feedback_pb2_grpc, trainer_pb2, trainer_pb2_grpc)

DEFAULT_TIMEOUT = 5.0
MAX_PAGE_SIZE = 1000  # the most items a listing RPC returns at once


def retry_service_config(max_attempts: int = 4) -> str:
    """gRPC's own retry policy: UNAVAILABLE is retried with exponential backoff."""
    return json.dumps({"methodConfig": [{
        "name": [{"service": f"looper.v1.{s}"} for s in ("DecisionService", "FeedbackService", "TrainerService")],
        "retryPolicy": {"maxAttempts": max_attempts, "initialBackoff": "0.05s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]})


def decide_request(use_case: str, decision_id: str, subject: Mapping[str, str],
                   context: Mapping[str, Scalar] | None = None,
                   candidates: Iterable[str | tuple[str, Mapping[str, Scalar]]] | None = None
                   ) -> decision_pb2.DecideRequest:
    """Builds a DecideRequest; candidates are action ids or (action id, features) pairs."""
    request = decision_pb2.DecideRequest(use_case=use_case, decision_id=decision_id, subject=dict(subject))
    for name, value in (context or {}).items():
        request.context[name].CopyFrom(feature_value(value))
    for candidate in candidates or ():
        action_id, features = (candidate, {}) if isinstance(candidate, str) else candidate
        item = request.candidates.add(action_id=action_id)
        for name, value in features.items():
            item.features[name].CopyFrom(feature_value(value))
    return request


def outcome_event(use_case: str, decision_id: str, outcome: str, value: float = 1.0,
                  event_id: str | None = None, event_time: datetime | None = None) -> feedback_pb2.OutcomeEvent:
    """Builds an OutcomeEvent; a missing event id gets a fresh one (fixed across retries)."""
    event = feedback_pb2.OutcomeEvent(event_id=event_id or uuid.uuid4().hex, use_case=use_case,
                                      decision_id=decision_id, outcome=outcome, value=float(value))
    if event_time is not None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(event_time.astimezone(timezone.utc))
        event.event_time.CopyFrom(stamp)
    return event


def _tracing_configured(tracer_provider) -> bool:
    """Whether there is a real tracer provider to trace calls with: the one passed, or a
    global one installed before the client was created. Without one the interceptor would
    cost about 0.5 ms a call for no-op spans."""
    if tracer_provider is not None:
        return True
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _channel(target: str, credentials: grpc.ChannelCredentials | None, options: list,
             tracer_provider=None, metadata: tuple = ()) -> grpc.Channel:
    channel = (grpc.secure_channel(target, credentials, options) if credentials
               else grpc.insecure_channel(target, options))
    if metadata:
        channel = grpc.intercept_channel(channel, TokenInterceptor(metadata))
    if not _tracing_configured(tracer_provider):
        return channel
    try:  # client spans and W3C traceparent
        from opentelemetry.instrumentation.grpc import client_interceptor, grpcext
    except ImportError:
        return channel
    return grpcext.intercept_channel(channel, client_interceptor(tracer_provider=tracer_provider))


def resolve_token(token: str | None = None, token_file: str | os.PathLike | None = None) -> str | None:
    """The bearer token to send: ``token``, else the contents of ``token_file``, else the
    LOOPER_TOKEN or LOOPER_TOKEN_FILE environment variables; None when there is none."""
    if token:
        return token.strip()
    path = token_file or os.environ.get("LOOPER_TOKEN_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get("LOOPER_TOKEN") or None


def token_metadata(token: str | None, targets: list[str], credentials) -> tuple:
    """The call metadata that carries the token. Without TLS a token may only go to a
    loopback address: anywhere else it would cross the network in the clear."""
    if not token:
        return ()
    if credentials is None:
        remote = [t for t in targets if not _is_loopback(t)]
        if remote:
            raise ValueError(f"refusing to send a bearer token without TLS to {remote[0]}: pass "
                             "credentials=grpc.ssl_channel_credentials(...)")
    return (("authorization", f"Bearer {token}"),)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method, self.timeout, self.credentials = details.method, details.timeout, details.credentials
        self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
        self.metadata = list(details.metadata or ()) + list(metadata)


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds the bearer token to every call on a channel (the stubs used directly too)."""

    def __init__(self, metadata: tuple):
        self.metadata = metadata

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_Details(details, self.metadata), request)


def _is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceAddress:
    """One service a client calls, so that its errors can name it and the address tried."""
    name: str
    address: str
    stub: Any

    def __str__(self) -> str:
        return f"{self.name} service at {self.address}"


def service_of(services: list[ServiceAddress], method) -> ServiceAddress | None:
    """The service a stub method belongs to; looked up only when a call failed."""
    for service in services:
        stubs = service.stub.stubs if isinstance(service.stub, RoundRobinStub) else [service.stub]
        if any(m is method for stub in stubs for m in vars(stub).values()):
            return service
    return None


class RoundRobinStub:
    """Stubs of one service over several channels, taken in turn call by call: a service
    running as several worker processes gets a connection to each (the kernel gives each
    new connection to one worker)."""

    def __init__(self, stubs: list):
        self.stubs = stubs
        self._next = itertools.cycle(stubs)

    def __getattr__(self, method: str):
        return getattr(next(self._next), method)


class LooperClient:
    """Synchronous client; thread-safe and meant to be created once and reused."""

    def __init__(self, decision: str = "127.0.0.1:50051", feedback: str = "127.0.0.1:50052",
                 trainer: str = "127.0.0.1:50053", *, timeout: float = DEFAULT_TIMEOUT,
                 credentials: grpc.ChannelCredentials | None = None, max_attempts: int = 4,
                 tracer_provider=None, token: str | None = None, token_file: str | os.PathLike | None = None,
                 connections: int = 1):
        """Calls carry the bearer token ``token`` (or the one in ``token_file``, or in the
        LOOPER_TOKEN / LOOPER_TOKEN_FILE variables); with ``credentials`` (TLS) the channels
        are encrypted. ``max_attempts`` (on UNAVAILABLE) is at most 5 in effect: gRPC's C core
        clamps a retry policy at 5 attempts and, unlike gRPC-Go, -Java and grpc-js, has no
        channel option that raises the cap. Calls are traced (client spans, W3C traceparent) with
        ``tracer_provider``, or with OpenTelemetry's global provider when one was installed
        before this client was created (see ``looper.tracing.configure_tracing``).
        ``connections`` to each of the Decision and Feedback services spread the calls over
        their worker processes (``looper serve --workers N``); use as many as workers."""
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self._metadata = token_metadata(resolve_token(token, token_file), [decision, feedback, trainer],
                                        credentials)
        options = ([("grpc.service_config", retry_service_config(max_attempts)), ("grpc.enable_retries", 1)]
                   if max_attempts > 1 else [("grpc.enable_retries", 0)])
        # A connection of this client's own: channels with equal arguments would share one.
        options.append(("grpc.use_local_subchannel_pool", 1))
        # Reconnect within a retry's backoff when a worker or a service restarts (gRPC's own
        # first reconnect waits a second, longer than the retries last, and calls meanwhile fail).
        options += [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 2000)]
        self.timeout = timeout
        open_channels = lambda target, count: [  # noqa: E731
            _channel(target, credentials, options, tracer_provider, self._metadata) for _ in range(count)]
        decision_channels, feedback_channels = open_channels(decision, connections), open_channels(feedback, connections)
        trainer_channel = open_channels(trainer, 1)[0]
        self._channels = [*decision_channels, *feedback_channels, trainer_channel]
        self.decision = RoundRobinStub([decision_pb2_grpc.DecisionServiceStub(c) for c in decision_channels])
        self.feedback = RoundRobinStub([feedback_pb2_grpc.FeedbackServiceStub(c) for c in feedback_channels])
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(trainer_channel)
        self.access = access_pb2_grpc.AccessServiceStub(trainer_channel)  # hosted beside the Trainer
        self._services = [ServiceAddress("Decision", decision, self.decision),
                          ServiceAddress("Feedback", feedback, self.feedback),
                          ServiceAddress("Trainer", trainer, self.trainer),
                          ServiceAddress("Access", trainer, self.access)]

    def _call(self, method, request, timeout: float | None):
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            called = service_of(self._services, method)
            raise from_rpc_error(err, str(called) if called else None) from None

    # --- the two calls a product engineer needs ---------------------------------------
    def decide(self, use_case: str, decision_id: str, subject: Mapping[str, str],
               context: Mapping[str, Scalar] | None = None, candidates=None,
               timeout: float | None = None) -> decision_pb2.Decision:
        """Asks for a decision; ``decision_id`` is yours and is the idempotency key."""
        request = decide_request(use_case, decision_id, subject, context, candidates)
        return self._call(self.decision.Decide, request, timeout).decision

    def log_feedback(self, use_case: str, decision_id: str, outcome: str, value: float = 1.0,
                     event_id: str | None = None, event_time: datetime | None = None,
                     timeout: float | None = None) -> bool:
        """Reports an outcome; returns False when the event id had been logged before."""
        event = outcome_event(use_case, decision_id, outcome, value, event_id, event_time)
        response = self._call(self.feedback.LogFeedback, feedback_pb2.LogFeedbackRequest(event=event), timeout)
        return response.status == feedback_pb2.FEEDBACK_STATUS_ACCEPTED

    # --- batches -----------------------------------------------------------------------
    def decide_batch(self, requests: list[decision_pb2.DecideRequest],
                     timeout: float | None = None) -> list[decision_pb2.DecideBatchResult]:
        """Many decisions in one call (build items with ``decide_request``)."""
        return list(self._call(self.decision.DecideBatch,
                               decision_pb2.DecideBatchRequest(requests=requests), timeout).results)

    def log_feedback_batch(self, events: list[feedback_pb2.OutcomeEvent], timeout: float | None = None) -> list[bool]:
        """Many outcome events in one call (build items with ``outcome_event``)."""
        response = self._call(self.feedback.LogFeedbackBatch,
                              feedback_pb2.LogFeedbackBatchRequest(events=events), timeout)
        return [s == feedback_pb2.FEEDBACK_STATUS_ACCEPTED for s in response.statuses]

    # --- reading back ------------------------------------------------------------------
    def get_decision(self, use_case: str, decision_id: str) -> decision_pb2.GetDecisionResponse:
        return self._call(self.decision.GetDecision,
                          decision_pb2.GetDecisionRequest(use_case=use_case, decision_id=decision_id), None)

    def get_label(self, use_case: str, decision_id: str) -> feedback_pb2.GetLabelResponse:
        return self._call(self.feedback.GetLabel,
                          feedback_pb2.GetLabelRequest(use_case=use_case, decision_id=decision_id), None)

    def join_stats(self, use_case: str) -> feedback_pb2.GetJoinStatsResponse:
        return self._call(self.feedback.GetJoinStats, feedback_pb2.GetJoinStatsRequest(use_case=use_case), None)

    # --- blueprints, training and models -------------------------------------------------
    def apply_blueprint(self, spec_yaml: str) -> tuple[trainer_pb2.Blueprint, bool]:
        response = self._call(self.trainer.ApplyBlueprint, trainer_pb2.ApplyBlueprintRequest(spec_yaml=spec_yaml), None)
        return response.blueprint, response.created

    def start_training_run(self, use_case: str, force_promote: bool = False) -> trainer_pb2.TrainingRun:
        return self._call(self.trainer.StartTrainingRun, trainer_pb2.StartTrainingRunRequest(
            use_case=use_case, force_promote=force_promote), None).run

    def get_training_run(self, run_id: str) -> trainer_pb2.TrainingRun:
        return self._call(self.trainer.GetTrainingRun, trainer_pb2.GetTrainingRunRequest(run_id=run_id), None).run

    def list_models(self, use_case: str) -> list[trainer_pb2.Model]:
        """Every model version of the use case, newest first (all pages)."""
        return self._all_pages(self.trainer.ListModels, trainer_pb2.ListModelsRequest, "models", use_case=use_case)

    def list_training_runs(self, use_case: str) -> list[trainer_pb2.TrainingRun]:
        """Every training run of the use case that Looper keeps, newest first (all pages)."""
        return self._all_pages(self.trainer.ListTrainingRuns, trainer_pb2.ListTrainingRunsRequest, "runs", use_case=use_case)

    def get_blueprint(self, use_case: str, version: int = 0) -> trainer_pb2.Blueprint:
        """One version of the use case's blueprint; the latest when ``version`` is 0."""
        return self._call(self.trainer.GetBlueprint, trainer_pb2.GetBlueprintRequest(
            use_case=use_case, version=version), None).blueprint

    def list_blueprints(self) -> list[trainer_pb2.Blueprint]:
        """The latest blueprint of every use case the caller may read, by name (all pages)."""
        return self._all_pages(self.trainer.ListBlueprints, trainer_pb2.ListBlueprintsRequest, "blueprints")

    def list_use_cases(self) -> list[trainer_pb2.UseCase]:
        """Every use case the caller may read, by name, with its current blueprint version,
        whether it is paused and its live model (all pages)."""
        return self._all_pages(self.trainer.ListUseCases, trainer_pb2.ListUseCasesRequest, "use_cases")

    def pause_use_case(self, use_case: str, reason: str = "") -> bool:
        return self._call(self.trainer.PauseUseCase, trainer_pb2.PauseUseCaseRequest(
            use_case=use_case, reason=reason), None).paused

    def resume_use_case(self, use_case: str) -> bool:
        return self._call(self.trainer.ResumeUseCase, trainer_pb2.ResumeUseCaseRequest(use_case=use_case), None).paused

    def promote_model(self, use_case: str, model_version: str) -> trainer_pb2.Model:
        return self._call(self.trainer.PromoteModel, trainer_pb2.PromoteModelRequest(
            use_case=use_case, model_version=model_version), None).model

    def rollback_model(self, use_case: str) -> trainer_pb2.Model:
        return self._call(self.trainer.RollbackModel, trainer_pb2.RollbackModelRequest(use_case=use_case), None).model

    def experiment_report(self, use_case: str, experiment_id: str = "") -> trainer_pb2.ExperimentReport:
        """The running experiment's report (or an ended one's, by id; without one and with none
        running, the last that ended): per arm its value with intervals, and the verdict."""
        return self._call(self.trainer.GetExperimentReport, trainer_pb2.GetExperimentReportRequest(
            use_case=use_case, experiment_id=experiment_id), None).report

    # --- credentials (a cluster administrator's) -------------------------------------------
    def list_credentials(self) -> list[access_pb2.Credential]:
        """Every credential, by id, never with its token (all pages)."""
        return self._all_pages(self.access.ListCredentials, access_pb2.ListCredentialsRequest, "credentials")

    def create_credential(self, name: str, grants: Mapping[str, Iterable[int]] | None = None,
                          cluster_admin: bool = False, certificate_subject: str = ""
                          ) -> tuple[access_pb2.Credential, str]:
        """Creates a credential with ``grants`` (use case or "*" -> roles, e.g.
        ``{"checkout": [access_pb2.ROLE_DECIDE]}``); returns it and its bearer token, which
        Looper shows only this once ("" for a certificate credential)."""
        request = access_pb2.CreateCredentialRequest(
            name=name, cluster_admin=cluster_admin, certificate_subject=certificate_subject,
            grants=[access_pb2.Grant(use_case=use_case, roles=list(roles)) for use_case, roles in (grants or {}).items()])
        response = self._call(self.access.CreateCredential, request, None)
        return response.credential, response.token

    def rotate_credential(self, credential_id: str) -> tuple[access_pb2.Credential, str]:
        """Replaces the credential's token (the old one stops working at once); returns the new one."""
        response = self._call(self.access.RotateCredential,
                              access_pb2.RotateCredentialRequest(credential_id=credential_id), None)
        return response.credential, response.token

    def revoke_credential(self, credential_id: str) -> access_pb2.Credential:
        """Revokes the credential; its token stops working at once."""
        return self._call(self.access.RevokeCredential,
                          access_pb2.RevokeCredentialRequest(credential_id=credential_id), None).credential

    def _all_pages(self, method, request_type, field: str, **request_fields) -> list:
        """Every item of a paged listing: calls ``method`` page after page until the last."""
        items, token = [], ""
        while True:
            request = request_type(page_size=MAX_PAGE_SIZE, page_token=token, **request_fields)
            response = self._call(method, request, None)
            items.extend(getattr(response, field))
            token = response.next_page_token
            if not token:
                return items

    # --- deletion -------------------------------------------------------------------------
    def delete_use_case(self, use_case: str, request_id: str | None = None, reason: str = "") -> trainer_pb2.Deletion:
        """Deletes a use case and everything Looper keeps of it (cluster administrators);
        returns the deletion, which runs in the background (``get_deletion``). The request id
        (a fresh one by default) makes a retry return the same deletion."""
        return self._call(self.trainer.DeleteUseCase, trainer_pb2.DeleteUseCaseRequest(
            use_case=use_case, request_id=request_id or uuid.uuid4().hex, reason=reason), None).deletion

    def delete_subject_data(self, use_case: str, subject: Mapping[str, str],
                            request_id: str | None = None) -> trainer_pb2.Deletion:
        """Deletes one subject's data in a use case (e.g. ``{"user_id": "u1"}``); returns the
        deletion, which runs in the background (``get_deletion``)."""
        return self._call(self.trainer.DeleteSubjectData, trainer_pb2.DeleteSubjectDataRequest(
            use_case=use_case, subject=dict(subject), request_id=request_id or uuid.uuid4().hex), None).deletion

    def get_deletion(self, deletion_id: str) -> trainer_pb2.Deletion:
        return self._call(self.trainer.GetDeletion, trainer_pb2.GetDeletionRequest(deletion_id=deletion_id),
                          None).deletion

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> "LooperClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
