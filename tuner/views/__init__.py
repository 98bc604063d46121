"""What a person sees of a study: the summary and report (``report``), ``tune status``,
the HTML report (``html``), plots, findings and the per-trial diagnoses, ``tune ui``,
and the live progress of a search. Views read a study; they never change one.

May import ``tuner.config``, ``tuner.storage``, ``tuner.errors`` and ``tuner.secrets``;
never the objectives, tracking or what runs the study.
"""
