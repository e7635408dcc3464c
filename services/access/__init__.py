"""The Access service: credentials and their roles per use case (a gRPC adapter over
``services.platform.auth.CredentialStore``), hosted beside the Trainer."""
