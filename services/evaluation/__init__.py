"""Evaluation for product goals: experiment statistics, off-policy estimates and tuning."""
