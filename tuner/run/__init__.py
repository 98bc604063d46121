"""Running a study: its phases (``runner``: prepare, device, tracking, study, search,
conclude), one trial (``trial``), local workers and their identity, the global budget,
creating or joining the study, fold-pruning peers, interrupts, pre-flight checks and the
test-set lockbox (refit and score once; ``refit_claim``: one process at a time).

May import every layer below it: views, tracking, objectives, config, storage,
search_spaces; only ``tuner.cli`` imports it.
"""
