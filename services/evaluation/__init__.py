"""Evaluation for product goals: experiment statistics, causal effects, off-policy estimates and
tuning. Plain numpy/scipy domain code that imports no service; ``ope``: off-policy estimates (IPS,
SNIPS, doubly robust) of a target policy's value from decisions logged with their
propensities; ``uplift``: heterogeneous treatment effects (T-, X- and S-learners over
CatBoost), the Qini curve and the uplift policy's value."""
