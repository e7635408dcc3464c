"""Builds the peer stack's inference requests the way a Python product would with
MLServer's own codec, in the peers' virtualenv (MLServer's packages are not in Looper's):

    .tools/peers/bin/python benchmarks/peers/infer_requests.py SPEC.json OUT.bin [--check HOST:PORT]

SPEC holds the model name, its input columns in order, which are categorical, and per
request the rows to score (the features one feature fetch returned, one row per action).
OUT gets each serialized ModelInferRequest after its uint32 LE length. With --check, every
request is sent once and the probabilities they get back are printed as JSON.

A missing numeric feature stays NaN (CatBoost's missing value): MLServer's pandas codec
turns NaN into null, which its gRPC converter cannot put in an FP64 tensor, so the nulls
are turned back into NaN before converting."""

import json
import math
import struct
import sys

import grpc
import pandas as pd
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.grpc import dataplane_pb2, dataplane_pb2_grpc
from mlserver.grpc.converters import ModelInferRequestConverter, ModelInferResponseConverter

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def build(spec: dict) -> list[bytes]:
    columns, categorical = spec["columns"], set(spec["categorical"])
    messages = []
    for rows in spec["requests"]:
        frame = pd.DataFrame(rows, columns=columns)
        for column in columns:
            frame[column] = frame[column].astype(str if column in categorical else float)
        request = PandasCodec.encode_request(frame)
        for tensor in request.inputs:
            if tensor.datatype == "FP64":
                values = getattr(tensor.data, "root", tensor.data)
                values[:] = [math.nan if v is None else v for v in values]
        messages.append(ModelInferRequestConverter.from_types(request, model_name=spec["model"]).SerializeToString())
    return messages


def check(address: str, messages: list[bytes]) -> list[list[float]]:
    with grpc.insecure_channel(address) as channel:
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = []
        for message in messages:
            reply = stub.ModelInfer(dataplane_pb2.ModelInferRequest.FromString(message), timeout=30)
            output = NumpyCodec.decode_output(ModelInferResponseConverter.to_types(reply).outputs[0])
            answers.append([float(p) for p in output.ravel()])
    return answers


def main(argv: list[str]) -> int:
    spec_path, out_path = argv[:2]
    messages = build(json.loads(open(spec_path).read()))
    with open(out_path, "wb") as out:
        for message in messages:
            out.write(struct.pack("<I", len(message)) + message)
    if len(argv) == 4 and argv[2] == "--check":
        print(json.dumps({"method": METHOD, "probabilities": check(argv[3], messages)}))
    else:
        print(json.dumps({"method": METHOD}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
