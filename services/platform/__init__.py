"""The runtime every service shares: settings, errors and request validation, telemetry,
the gRPC server, durable files and logs, background jobs, and the data directory that says
where each data product lives. It owns no data of its own."""
