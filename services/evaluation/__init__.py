"""Evaluation for product goals: experiment statistics, causal effects, off-policy estimates and tuning."""
