"""Generated from protos/looper/v1 by `make proto`; do not edit."""
