"""The Feedback service: durable, idempotent outcome events and the label joiner."""
