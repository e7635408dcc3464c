"""Models: the registry of versions and deployments (``registry``), the one model-input
encoding (``encoding``), the CatBoost serving runtime (``runtime``) and each Decision
process's live models with reload (``live``)."""
