"""The asyncio flavour of the Looper client, for services built on asyncio."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, Mapping

import grpc

from looper.client import (DEFAULT_TIMEOUT, Scalar, ServiceAddress, decide_request, outcome_event, resolve_token,
                           retry_service_config, service_of, token_metadata)
from looper.errors import from_rpc_error
from looperpb.v1 import decision_pb2, decision_pb2_grpc, feedback_pb2, feedback_pb2_grpc


class AsyncLooperClient:
    """``await client.decide(...)`` and ``await client.log_feedback(...)``; create it inside
    the running event loop and reuse it."""

    def __init__(self, decision: str = "127.0.0.1:50051", feedback: str = "127.0.0.1:50052", *,
                 timeout: float = DEFAULT_TIMEOUT, credentials: grpc.ChannelCredentials | None = None,
                 max_attempts: int = 4, token: str | None = None, token_file: str | os.PathLike | None = None):
        """Calls carry the bearer token as in ``LooperClient``."""
        self._metadata = token_metadata(resolve_token(token, token_file), [decision, feedback], credentials)
        options = ([("grpc.service_config", retry_service_config(max_attempts)), ("grpc.enable_retries", 1)]
                   if max_attempts > 1 else [("grpc.enable_retries", 0)])
        self.timeout = timeout
        self._channels = [grpc.aio.secure_channel(t, credentials, options) if credentials
                          else grpc.aio.insecure_channel(t, options) for t in (decision, feedback)]
        self.decision = decision_pb2_grpc.DecisionServiceStub(self._channels[0])
        self.feedback = feedback_pb2_grpc.FeedbackServiceStub(self._channels[1])
        self._services = [ServiceAddress("Decision", decision, self.decision),
                          ServiceAddress("Feedback", feedback, self.feedback)]

    async def _call(self, method, request, timeout: float | None):
        try:
            return await method(request, timeout=timeout or self.timeout, metadata=self._metadata or None)
        except grpc.aio.AioRpcError as err:
            called = service_of(self._services, method)
            raise from_rpc_error(err, str(called) if called else None) from None

    async def decide(self, use_case: str, decision_id: str, subject: Mapping[str, str],
                     context: Mapping[str, Scalar] | None = None, candidates=None,
                     timeout: float | None = None) -> decision_pb2.Decision:
        request = decide_request(use_case, decision_id, subject, context, candidates)
        return (await self._call(self.decision.Decide, request, timeout)).decision

    async def log_feedback(self, use_case: str, decision_id: str, outcome: str, value: float = 1.0,
                           event_id: str | None = None, event_time: datetime | None = None,
                           timeout: float | None = None) -> bool:
        event = outcome_event(use_case, decision_id, outcome, value, event_id, event_time)
        response = await self._call(self.feedback.LogFeedback, feedback_pb2.LogFeedbackRequest(event=event), timeout)
        return response.status == feedback_pb2.FEEDBACK_STATUS_ACCEPTED

    async def decide_batch(self, requests: list[decision_pb2.DecideRequest],
                           timeout: float | None = None) -> list[decision_pb2.DecideBatchResult]:
        response = await self._call(self.decision.DecideBatch, decision_pb2.DecideBatchRequest(requests=requests),
                                    timeout)
        return list(response.results)

    async def log_feedback_batch(self, events: list[feedback_pb2.OutcomeEvent],
                                 timeout: float | None = None) -> list[bool]:
        response = await self._call(self.feedback.LogFeedbackBatch,
                                    feedback_pb2.LogFeedbackBatchRequest(events=events), timeout)
        return [s == feedback_pb2.FEEDBACK_STATUS_ACCEPTED for s in response.statuses]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> "AsyncLooperClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
