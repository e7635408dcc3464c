"""The tracing backend for on-call engineers: Zipkin (storage, query API and UI) fed over
OTLP through a small bridge that keeps span links as searchable tags."""
