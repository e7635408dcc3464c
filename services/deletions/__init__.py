"""Deleting a use case, or one subject's data, everywhere Looper keeps it: the requests and
their progress, the tombstones that hide what is being deleted at once, and the job that
removes it from each data product."""
