"""Evaluation for product goals: experiment statistics, off-policy estimates and tuning.
Plain numpy/scipy domain code that imports no service; ``ope``: off-policy estimates (IPS,
SNIPS, doubly robust) of a target policy's value from decisions logged with their
propensities."""
