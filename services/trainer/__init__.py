"""The Trainer service: blueprints, training runs, evaluation and the model registry."""
