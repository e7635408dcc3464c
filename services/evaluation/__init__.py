"""Evaluation for product goals: causal effects, off-policy estimates, sequential tests and tuning."""
