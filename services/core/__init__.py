"""Domain code the three services share: blueprints, stores, logs and their errors.

Nothing here imports gRPC except ``grpc_runtime``; the rest can be used and tested alone.
"""
