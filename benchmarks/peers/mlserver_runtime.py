"""The peer stack's model runtime for MLServer 1.7.1: mlserver-catboost's model, but it
decodes the request as a pandas frame (so categorical columns stay text; the stock runtime
takes one numeric tensor) and answers the positive class's probability (the stock runtime
answers class labels), with one thread a call as Looper's runtime predicts. Runs in the
peers' virtualenv (`make bench-peers`), loaded by model-settings.json as
``mlserver_runtime.CatBoostProbabilities``."""

from mlserver import types
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver_catboost import CatboostModel


class CatBoostProbabilities(CatboostModel):
    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        frame = self.decode_request(payload, default_codec=PandasCodec)
        probabilities = self._model.predict_proba(frame, thread_count=1)[:, 1]
        return types.InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output(name="probability", payload=probabilities)])
