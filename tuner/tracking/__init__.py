"""MLflow tracking: one experiment and parent run per study, a child run per trial and
a refit run (``tracker``, ``trial_run``), written off the training loop by a writer
process (``writer``, ``writer_process``), surviving outages (``outage``). Tracking
observes; it never steers the search.

May import ``tuner.config``, ``tuner.storage``, ``tuner.errors`` and ``tuner.secrets``;
never the objectives, the views or what runs the study.
"""
