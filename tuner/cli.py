"""The ``tune`` command. Imports stay lazy so ``tune --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

COMMANDS = ("run", "finish", "report", "best", "status", "ui", "schema", "init", "storage-proxy")

_EPILOG = """examples:
  tune examples/digits.yaml                 run (or resume) the study, then score the test split once
  tune examples/digits.yaml --n-trials 10   override budget.n_trials
  tune study.yaml --workers 2               two local worker processes share the study
  tune study.yaml --gpus all                one worker per GPU (or --gpus 0,1)
  tune study.yaml --gpus all --trials-per-gpu 4   four workers share each GPU (small models)
  tune storage-proxy --storage postgresql://tuner@db/tuner   serve grpc://HOST:13000
  tune report examples/digits.yaml --json   machine-readable summary
  tune best examples/digits.yaml            the best parameters as YAML
  tune status examples/digits.yaml          running, finished or stopped; best so far, ETA
  tune finish examples/digits.yaml          score the test split now, on a search cut short
  tune ui examples/digits.yaml              the MLflow UI on the study (127.0.0.1:5000)
  tune report examples/digits.yaml --html report.html   one self-contained page with plots
"""


def _port(text: str) -> int:
    """A TCP port for argparse: an integer from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is an integer from 1 to 65535, got {text!r}")
    return port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tune",
        description="Cross-validated hyperparameter search for PyTorch models, with a "
        "held-out test split scored once and everything logged to MLflow.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a study (the default command)")
    run.add_argument("study", help="the study file (YAML)")
    run.add_argument("--n-trials", type=int, help="override budget.n_trials (the study's total)")
    run.add_argument("--storage", help="override the storage URL (also: $TUNER_STORAGE)")
    run.add_argument(
        "--allow-changes",
        action="store_true",
        help="join a study whose search space or training settings changed",
    )
    run.add_argument("--no-refit", action="store_true", help="skip the refit and test scoring")
    run.add_argument("--workers", type=int, help="start N local worker processes on CPU")
    run.add_argument("--gpus", help="one worker per GPU: 'all' or ids like 0,1 (CUDA_VISIBLE_DEVICES)")
    run.add_argument(
        "--trials-per-gpu",
        type=int,
        help="with --gpus: N workers (so N trials at once) on each GPU; see docs/distributed.md",
    )
    run.add_argument("--worker-rank", type=int, help=argparse.SUPPRESS)
    run.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    run.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    for name, text in (
        ("report", "summarize a study"),
        ("best", "print the best parameters"),
        ("status", "trial counts, best so far and running trials"),
        (
            "finish",
            "refit the best trial and score the test split now, before the "
            "budget is reached (recorded as a search cut short)",
        ),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("study", help="the study file (YAML)")
        sp.add_argument("--storage", help="override the storage URL (also: $TUNER_STORAGE)")
        sp.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        if name in ("report", "status"):
            sp.add_argument("--json", action="store_true", help="print JSON")
            sp.add_argument(
                "--n-trials", type=int, help="the budget to measure against, when a run was given --n-trials"
            )
        if name == "report":
            sp.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML report")
        if name == "best":
            sp.add_argument("--format", choices=("yaml", "json"), default="yaml")

    proxy = sub.add_parser("storage-proxy", help="serve a database to many workers (Optuna's gRPC proxy)")
    proxy.add_argument("--storage", help="the database URL (also: $TUNER_STORAGE)")
    proxy.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    proxy.add_argument("--port", type=_port, default=13000, help="port to listen on (default 13000)")
    proxy.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    ui = sub.add_parser("ui", help="start the MLflow UI on the study's tracking store")
    ui.add_argument("study", help="the study file (YAML)")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=_port, default=5000, help="MLflow UI port (default 5000)")
    ui.add_argument(
        "--dashboard", action="store_true", help="also start optuna-dashboard on the study storage"
    )
    ui.add_argument("--dashboard-only", action="store_true", help="start optuna-dashboard instead of MLflow")
    ui.add_argument("--dashboard-port", type=_port, default=8080, help="optuna-dashboard port (default 8080)")
    ui.add_argument("--storage", help="override the storage URL (also: $TUNER_STORAGE)")
    ui.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("schema", help="print the JSON Schema of the study file")
    init = sub.add_parser("init", help="write a commented starter study file")
    init.add_argument("path", nargs="?", default="study.yaml")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `tune STUDY.yaml` is `tune run STUDY.yaml`
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first not in COMMANDS:
        argv.insert(argv.index(first), "run")
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    _quiet_libraries()
    try:
        return int(_dispatch(args) or 0)
    except KeyboardInterrupt:
        print("tune: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from tuner.errors import TunerError
        from tuner.secrets import mask_secrets

        if args.debug:
            raise
        if isinstance(e, TunerError):
            text = " ".join(mask_secrets(str(e)).split())
            print(f"tune: error: {text}", file=sys.stderr)
            return e.exit_code
        if isinstance(e, BrokenPipeError):  # `tune report | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
            return 141
        if isinstance(e, OSError):  # the file system said no: the user can act on that
            where = f" ({e.filename})" if e.filename else ""
            print(f"tune: error: {mask_secrets(e.strerror or str(e))}{where}", file=sys.stderr)
            return 2
        raise


def _quiet_libraries() -> None:
    """MLflow and Optuna narrate at INFO; tuner prints what a user needs itself."""
    import logging
    import warnings

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Against a tracking server, MLflow prints "View run ... at" for every run it ends:
    # two lines per trial. tuner prints the one link that matters, the study's.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    # Optuna logs every failed or interrupted trial with its traceback; tuner reports a
    # failure itself (the progress line, traceback.txt on the trial's MLflow run), and a
    # Ctrl-C / SIGTERM must end with one line, not a traceback.
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _TrialFailures) for f in optimize_log.filters):
        optimize_log.addFilter(_TrialFailures())


class _TrialFailures:
    def filter(self, record: Any) -> bool:
        return not record.getMessage().startswith("Trial ") or " failed " not in record.getMessage()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    storage = getattr(args, "storage", None) or os.environ.get("TUNER_STORAGE")
    if storage:
        out["storage"] = storage
    if getattr(args, "n_trials", None) is not None:
        out["budget.n_trials"] = args.n_trials
    return out


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "schema":
        from tuner.config import StudyConfig

        schema = StudyConfig.model_json_schema(mode="validation")
        for hidden in ("base_dir", "source_file"):
            schema.get("properties", {}).pop(hidden, None)
        print(json.dumps(schema, indent=2))
        return 0
    if args.command == "init":
        return _init(Path(args.path))
    if args.command == "storage-proxy":
        from tuner.storage.proxy import serve

        return serve(args.storage or os.environ.get("TUNER_STORAGE"), args.host, args.port)
    from tuner.config import load_config

    config = load_config(args.study, _overrides(args))
    if args.command == "run":
        from tuner.run.runner import run_study
        from tuner.views.report import render

        if args.workers is not None or args.gpus is not None or args.trials_per_gpu is not None:
            code = _run_workers(args, config)
            if code or args.no_refit:
                return code
        summary = run_study(
            config,
            allow_changes=args.allow_changes,
            refit=not args.no_refit,
            worker_rank=args.worker_rank,
            threads=args.threads,
            live=False if args.threads else None,
            optimize=args.workers is None and args.gpus is None,
        )
        if args.threads is None:  # a local worker leaves the summary to its parent
            print()
            print(render(summary))
        return 0
    if args.command == "finish":
        from tuner.run.runner import run_study
        from tuner.run.stores import load_existing
        from tuner.views.report import render

        load_existing(config)  # a study must exist before it can be finished
        summary = run_study(config, optimize=False, finish_early=True)
        print()
        print(render(summary))
        return 0
    if args.command == "ui":
        from tuner.views.ui import serve_ui

        return serve_ui(
            config,
            host=args.host,
            port=args.port,
            dashboard=args.dashboard,
            dashboard_only=args.dashboard_only,
            dashboard_port=args.dashboard_port,
            debug=args.debug,
        )
    return _show(args, config)


def _show(args: argparse.Namespace, config: StudyConfig) -> int:
    """``tune status``, ``report`` and ``best``: read the study, never write to it."""
    from tuner.run.stores import load_existing

    study = load_existing(config)
    if args.command == "status":
        from tuner.views.status import render_status, study_status

        status = study_status(config, study)
        print(json.dumps(status, indent=2, default=str) if args.json else render_status(status))
        return 0
    from tuner.views.report import render, summarize

    summary = summarize(config, study)
    if args.command == "report":
        print(json.dumps(summary, indent=2, default=str) if args.json else render(summary))
        if args.html:
            from tuner.views.html import write_html

            path = write_html(config, study, summary, args.html)
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    elif args.command == "best":
        if summary["best"] is None:
            from tuner.errors import TunerError

            raise TunerError(f"study {config.name!r} has no completed trial yet")
        params = summary["best"]["params"]
        if args.format == "json":
            print(json.dumps(params, indent=2))
        else:
            import yaml

            print(
                f"# best parameters of study {config.name} (trial #{summary['best']['number']}, "
                f"cross-validated {config.objective.metric} {summary['best']['cv_mean']:.4f})"
            )
            print(yaml.safe_dump(params, sort_keys=False).rstrip())
    return 0


def _run_workers(args: argparse.Namespace, config: StudyConfig) -> int:
    """Start the local workers (see ``tuner.run.workers``); the caller refits after them."""
    from tuner.run.workers import init_study, plan_workers, run_workers

    plan = plan_workers(args.workers, args.gpus, threads=config.training.threads, per_gpu=args.trials_per_gpu)
    base = [args.study]
    if args.n_trials is not None:
        base += ["--n-trials", str(args.n_trials)]
    if args.storage:
        # Through the environment, not argv: a URL's password must not show in `ps`.
        os.environ["TUNER_STORAGE"] = args.storage
    if args.allow_changes:
        base.append("--allow-changes")
    if args.debug:
        base.append("--debug")
    init_study(config, allow_changes=args.allow_changes)
    code = run_workers(plan, base, config.storage_url, config.name)
    if code == 130:
        raise KeyboardInterrupt
    return code


def _init(path: Path) -> int:
    """Write the starter study file at ``path``; never overwrites, never a traceback."""
    from tuner.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path} is a folder: give a file name, e.g. tune init {path / 'study.yaml'}")
    if path.exists():
        raise ConfigError(f"{path} already exists; tune init never overwrites: choose another path")
    folder = path.parent
    if not folder.is_dir():
        what = (
            "is not a folder" if folder.exists() else f"does not exist; create it first (mkdir -p {folder})"
        )
        raise ConfigError(f"cannot write {path}: {folder} {what}")
    text = (Path(__file__).parent / "templates" / "study.yaml").read_text(encoding="utf-8")
    created = False
    try:
        with path.open("x", encoding="utf-8") as f:  # "x": fails if it appeared meanwhile
            created = True
            f.write(text)
    except OSError as e:
        if created:
            path.unlink(missing_ok=True)  # no half-written file left behind
        raise ConfigError(
            f"cannot write {path}: {e.strerror or e}; choose a folder you can write to"
        ) from None
    print(f"wrote {path}; run it with: tune {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
