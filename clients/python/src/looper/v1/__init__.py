"""Generated protobuf and gRPC stubs for looper.v1 (``make proto`` writes them; do not edit)."""
