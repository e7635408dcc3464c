"""Evaluation for product goals: estimators on logged decisions, plain numpy/scipy domain code
that imports no service. ``ope``: off-policy estimates of a target policy's value from
decisions logged with their propensities."""
