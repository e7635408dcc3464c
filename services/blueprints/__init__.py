"""Blueprints: each use case's declarative, versioned configuration (``spec``) and the store
of its immutable versions (``store``)."""
