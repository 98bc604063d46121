"""How a study's MLflow experiment opens in the UI: the tags tuner sets on it."""

from __future__ import annotations

__all__ = ["EXPERIMENT_KIND", "VIEW_TAG", "view_state"]

# MLflow 3's UI opens an experiment in its GenAI view unless this tag says it holds model
# training runs (3.17 also has a per-browser switch, which the URL's workflowType sets):
# the classic run table, with metric columns, is what a study needs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# The run table as tuner opens it: an experiment tag in the format of MLflow UI's "share
# view" (the UI reads `mlflow.sharedViewState.<key>` when its URL says
# ?viewStateShareKey=<key>; tuner.views.ui.VIEW_KEY names it). It shows every row's score: the
# parent's best_cv_ and test_ metrics, each trial's cv_ metric and how far it got.
VIEW_TAG = "mlflow.sharedViewState.tuner"


def view_state(metric: str) -> str:
    """The shared view's JSON: the run table's columns for a study scored by ``metric``."""
    import json

    columns = [
        "attributes.`Models`",
        f"metrics.`best_cv_{metric}`",
        f"metrics.`test_{metric}`",
        f"metrics.`cv_{metric}`",
        "metrics.`cv_folds_done`",
        "metrics.`epochs_trained`",
        "tags.`tuner.diagnosis`",
    ]
    return json.dumps({"selectedColumns": columns})
