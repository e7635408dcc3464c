"""Looper's services: Decision, Feedback and Trainer, over the shared domain code in ``core``."""
