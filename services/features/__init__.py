"""Features: the Feast façade every service uses (``store``) and the per-subject features
Looper maintains from feedback (``personalization``)."""
