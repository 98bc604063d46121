"""The refit model, taken away: logged on the refit's MLflow run, registered when the
study file asks, and loaded back for further training.

On the refit run (``runs:/<run>/model`` gathers both halves, MLflow 3 merges them):

- the inference export, ``mlflow.pytorch.log_model`` (MLflow 3 files it under "Logged
  models" as ``models:/m-…``; it predicts without tuner installed);
- under the run's own artifacts ``model/``: ``recipe.json`` and ``state_dict.pt``, what
  rebuilds the network for further training (``objectives.export``), and a README with
  the three lines that do it;
- tags ``tuner.model_uri`` and, once registered, ``tuner.registered_model``.

``mlflow.register: NAME`` makes it a new version of NAME in the Model Registry, tagged
with the study, the trial and its scores, with an alias (``candidate``). Never when the
test split has been scored for more than one selection: that score is optimistic, and
a registry entry would carry it on as if it were not (``allow_extra_looks`` overrides).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objectives.export import RefitModel
    from tuner.config import StudyConfig

__all__ = ["load_refit", "log_refit_model", "register_refit", "take_away"]

ARTIFACT = "model"


def snippet(ref: str) -> str:
    """The three lines that rebuild and fine-tune the refit model."""
    return (
        "import tuner\n"
        f'model = tuner.load_refit("{ref}")  # a torch.nn.Module in model.module\n'
        "model.fine_tune(X_new, y_new, epochs=5)  # the best trial's optimizer, lr, batch size\n"
    )


def take_away(
    tracker: Any,
    run_id: str,
    entry: dict[str, Any],
    model: Any,
    dataset: Any,
    config: StudyConfig,
    best: Any,
    history: list[dict[str, Any]],
    say: Any,
) -> dict[str, Any]:
    """The model on the refit run and, when asked, in the registry; its description says
    where both are. Returns what the lockbox entry records of it (empty when
    ``mlflow.log_model`` is off or the model could not be logged)."""
    if not config.mlflow.log_model:
        return {}
    from mlflow.entities import RunTag

    try:
        logged = log_refit_model(tracker, run_id, model, dataset, config, best)
    except Exception as e:
        tracker.warn(f"could not log the refit model to MLflow: {e}")
        return {}
    out: dict[str, Any] = {"model_uri": logged["model_uri"], "model_artifacts": logged["artifacts"]}
    try:
        registered = register_refit(tracker, config, run_id, logged["model_uri"], entry, history)
    except Exception as e:
        name = config.mlflow.register_config.name if config.mlflow.register_config else "?"
        registered = {"name": name, "skipped": f"the registry refused it: {e}"}
    if registered:
        out["registered"] = registered
        if registered.get("skipped"):
            tracker.warn(
                f"the refit model was not registered as {registered['name']}: {registered['skipped']}"
            )
        else:
            say(
                f"registered the refit model as {registered['name']} version {registered['version']} "
                f"(alias @{registered['alias']})"
            )
    tracker.client.log_batch(run_id, tags=[RunTag("mlflow.note.content", refit_note(run_id, entry, out))])
    return out


def log_refit_model(
    tracker: Any, run_id: str, model: Any, dataset: Any, config: StudyConfig, best: Any
) -> dict[str, Any]:
    """Log both halves of the model on the refit run; returns ``{"model_uri", "artifacts"}``."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.entities import RunTag

    from objectives.export import recipe, save

    model = model.cpu().eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT
        params = config.search_space.complete(best.params)  # the fixed values too
        save(folder, model, recipe(config, dataset, params, best.number))
        (folder / "README.md").write_text(
            f"# The refit of trial #{best.number}, study {config.name}\n\n"
            "`recipe.json` and `state_dict.pt` rebuild the network for further training, "
            "with tuner installed:\n\n```python\n" + snippet(f"runs:/{run_id}") + "```\n\n"
            "The inference export (no tuner needed) is this run's logged model: "
            f'`mlflow.pytorch.load_model("runs:/{run_id}/model")`.\n'
        )
        tracker.client.log_artifacts(run_id, str(folder), ARTIFACT)
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model,
            name=ARTIFACT,
            input_example=dataset.rows(slice(0, 2)),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    tracker.client.log_batch(run_id, tags=[RunTag("tuner.model_uri", info.model_uri)])
    return {"model_uri": info.model_uri, "artifacts": f"runs:/{run_id}/{ARTIFACT}"}


def register_refit(
    tracker: Any, config: StudyConfig, run_id: str, model_uri: str, entry: dict[str, Any], history: list[Any]
) -> dict[str, Any] | None:
    """A new version of ``mlflow.register``'s model with its alias, or why not.

    Returns ``{"name", "version", "alias"}``, ``{"name", "skipped": why}``, or None when
    the study file does not ask for it.
    """
    reg = config.mlflow.register_config
    if reg is None:
        return None
    selections = sorted({e["trial_number"] for e in history} | {entry["trial_number"]})
    if len(selections) > 1 and not reg.allow_extra_looks:
        why = (
            f"the test split has been scored for {len(selections)} selections (trials "
            f"{', '.join(f'#{n}' for n in selections)}), so this test score is optimistic; set "
            "mlflow.register.allow_extra_looks: true to register it anyway"
        )
        return {"name": reg.name, "skipped": why}
    from mlflow.entities import RunTag

    metric = entry["metric"]
    tags = {
        "tuner.study": config.name,
        "tuner.trial": str(entry["trial_number"]),
        f"cv_{metric}": _num(entry.get("cv_mean")),
        f"test_{metric}": _num(entry["score"]),
        "tuner.test_looks": str(len(history) + 1),
        "tuner.refit_run_id": run_id,
    }
    client = tracker.client
    try:
        client.get_registered_model(reg.name)
    except Exception:
        try:
            client.create_registered_model(reg.name, description=f"registered by tuner, study {config.name}")
        except Exception:
            client.get_registered_model(reg.name)  # another process made it meanwhile
    version = client.create_model_version(
        reg.name,
        source=model_uri,
        run_id=run_id,
        tags=tags,
        description=(
            f"study {config.name}, trial #{entry['trial_number']}: cross-validated {metric} "
            f"{_num(entry.get('cv_mean'))}, held-out test {metric} {_num(entry['score'])} "
            f"(looks at the test split: {len(history) + 1})"
        ),
        model_id=_model_id(model_uri),
    )
    client.set_registered_model_alias(reg.name, reg.alias, version.version)
    ref = f"{reg.name} version {version.version} (@{reg.alias})"
    client.log_batch(run_id, tags=[RunTag("tuner.registered_model", ref)])
    return {"name": reg.name, "version": int(version.version), "alias": reg.alias}


def refit_note(run_id: str, entry: dict[str, Any], taken: dict[str, Any]) -> str:
    """The refit run's description in the MLflow UI: its score and where its model is."""
    m = entry["metric"]
    lines = [
        f"Refit of trial #{entry['trial_number']} on every non-test row, then the held-out test "
        f"split scored once: {m} **{_num(entry['score'])}** (cross-validated {_num(entry.get('cv_mean'))}).",
        "",
        f"- inference model (no tuner needed): `{taken['model_uri']}`, also "
        f"`runs:/{run_id}/model`: `mlflow.pytorch.load_model(...)`",
        "- for further training: `model/recipe.json` and `model/state_dict.pt` in this run's artifacts",
    ]
    reg = taken.get("registered")
    if reg and not reg.get("skipped"):
        lines.append(f"- registered: `models:/{reg['name']}@{reg['alias']}` (version {reg['version']})")
    elif reg:
        lines.append(f"- not registered as {reg['name']}: {reg['skipped']}")
    lines += ["", "```python", snippet(f"runs:/{run_id}").rstrip(), "```"]
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def _model_id(model_uri: str) -> str | None:
    m = re.fullmatch(r"models:/(m-[0-9a-f]+)", model_uri)
    return m.group(1) if m else None


def load_refit(ref: str | Path, tracking_uri: str | None = None) -> RefitModel:
    """Rebuild a refit model for further training (``objectives.export.RefitModel``).

    ``ref`` is one of: a study file (its latest refit, from its MLflow store); a refit
    run, ``runs:/<run id>`` or the bare id; a registered version, ``models:/NAME@alias``
    or ``models:/NAME/3``; or a local folder holding ``recipe.json`` and ``state_dict.pt``.
    ``tracking_uri`` defaults to the study file's, else MLflow's own default.
    """
    from objectives.export import RECIPE_FILE, RefitModel
    from tuner.errors import TunerError

    text = str(ref)
    path = Path(text)
    if path.is_dir() and (path / RECIPE_FILE).exists():
        return RefitModel.load(path)
    if text.endswith((".yaml", ".yml")) and path.is_file():
        run_id, tracking_uri = _study_refit(path, tracking_uri)
    else:
        run_id = _run_id(text, tracking_uri)
    import os

    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a few small files
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=ARTIFACT, dst_path=tmp, tracking_uri=tracking_uri
            )
        except Exception as e:
            raise TunerError(
                f"cannot download the model of run {run_id}: {e}. Is tracking_uri the study's MLflow store?"
            ) from None
        if not (Path(folder) / RECIPE_FILE).exists():
            raise TunerError(
                f"run {run_id} has no {ARTIFACT}/{RECIPE_FILE}: it was not logged by tuner's refit"
            )
        return RefitModel.load(folder)


def _study_refit(path: Path, tracking_uri: str | None) -> tuple[str, str]:
    from tuner.config import load_config
    from tuner.errors import TunerError
    from tuner.run.stores import load_existing
    from tuner.storage.records import scorings

    config = load_config(path)
    study = load_existing(config)
    looks = [e for e in scorings(study) if e.get("mlflow_run_id")]
    if not looks:
        raise TunerError(f"study {config.name} has no refit logged to MLflow yet: run `tune {path}` first")
    return looks[-1]["mlflow_run_id"], tracking_uri or config.tracking_uri


def _run_id(ref: str, tracking_uri: str | None) -> str:
    from tuner.errors import TunerError

    if ref.startswith("runs:/"):
        return ref[len("runs:/") :].strip("/").split("/")[0]
    if re.fullmatch(r"[0-9a-f]{32}", ref):
        return ref
    if ref.startswith("models:/"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        rest = ref[len("models:/") :]
        try:
            if "@" in rest:
                name, alias = rest.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            elif re.fullmatch(r"m-[0-9a-f]+", rest):
                return str(client.get_logged_model(rest).source_run_id)
            else:
                name, version = rest.rsplit("/", 1)
                mv = client.get_model_version(name, version)
        except Exception as e:
            raise TunerError(f"cannot find {ref} in the MLflow registry: {e}") from None
        if not mv.run_id:
            raise TunerError(f"{ref} names no run: it was not registered by tuner")
        return str(mv.run_id)
    raise TunerError(
        f"{ref!r} is not a refit model tuner can load: give a study file, runs:/<run id>, "
        "models:/NAME@alias, models:/NAME/VERSION, or a folder with recipe.json"
    )
