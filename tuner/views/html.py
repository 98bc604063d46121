"""``tune report --html OUT.html``: one self-contained page (no scripts, no links to
fetch): the summary table, the trials, diagnoses when the trials carry them, and
the study plots embedded as base64 PNGs.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:72rem;color:#1d2330;line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .7rem;border-bottom:1px solid #eef;
text-align:left;vertical-align:top}th{background:#f4f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#667}.warn{color:#a4301c}.state-complete{color:#1b7a3a}.state-pruned{color:#8a6d00}
.state-fail{color:#a4301c}figure{margin:1rem 0}img{max-width:100%;border:1px solid #eef}
figcaption{color:#667;font-size:.9rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.{digits}f}"
    return "-" if value is None else _e(value)


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _e(value)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _summary_section(s: dict[str, Any]) -> str:
    from tuner.views.findings import trials_of_budget

    c = s["counts"]
    m = s["metric"]
    rows = [
        ("metric", f"{_e(m)} ({_e(s['direction'])})"),
        (
            "trials",
            f"{trials_of_budget(s['finished'], s['budget'])}: complete {c['complete']}, pruned "
            f"{c['pruned']}, failed {c['fail']}, running {c['running']}",
        ),
    ]
    from tuner.views.report import compute_text

    if compute_text(s):
        rows.append(("epochs trained", _e(compute_text(s))))
    rows += [
        ("pre-flight warning", f"<span class='warn'>{_e(w)}</span>") for w in s.get("preflight_warnings", [])
    ]
    best = s.get("best")
    if best:
        std = best.get("cv_std")
        cv = _num(best["cv_mean"]) + (f" ± {_num(std)}" if isinstance(std, float) else "")
        rows.append(
            ("best trial", f"#{best['number']}: cross-validated {_e(m)} {cv} (mean ± std over folds)")
        )
        if best.get("fold_scores"):
            rows.append(("fold scores", ", ".join(_num(v) for v in best["fold_scores"])))
    else:
        rows.append(("best trial", "none yet (no trial completed)"))
    rows += _test_rows(s.get("test"), m, bool(s.get("stopped")))
    if s.get("stopped"):
        stop = s["stopped"]
        rows.append(
            (
                "search",
                f"stopped by {_e(stop['reason'])} at {_e(stop['at'])}, after "
                f"{stop['finished']}/{stop['budget']} trials",
            )
        )
    out = "<h2>Summary</h2>" + _table(rows)
    if best and best["params"]:
        out += "<h3>Best parameters</h3>" + _table([(k, _param(v)) for k, v in best["params"].items()])
    return out


def _test_rows(test: dict[str, Any] | None, m: str, stopped: bool) -> list[tuple[str, str]]:
    """The summary rows of the held-out test split: its first look, the notes on it, every
    later look, or why it is not scored yet."""
    rows: list[tuple[str, str]] = []
    if test:
        rows.append(
            (
                "held-out test",
                f"{_e(m)} {_num(test['score'])} on {_e(test.get('n_test'))} samples "
                f"(refit of trial #{test['trial_number']}, scored {_e(test['scored_at'])})",
            )
        )
        if test.get("refit_epochs") is not None:
            rows.append(("refit epochs", f"{_e(test['refit_epochs'])}: {_e(test.get('refit_epochs_rule'))}"))
        if test.get("validation_optimism") is not None:
            rows.append(
                ("validation optimism", f"{test['validation_optimism']:+.4f} (cross-validated − test)")
            )
        if test.get("optimism_note"):
            rows.append(("note", f"<span class='warn'>{_e(test['optimism_note'])}</span>"))
        if test.get("search_cut_short"):
            rows.append(
                (
                    "note",
                    f"scored by <code>tune finish</code> after {_e(test.get('trials_finished'))}/"
                    f"{_e(test.get('budget'))} trials: the search was cut short of its budget",
                )
            )
        if test.get("times_scored", 1) > 1:
            rows.append(
                (
                    "warning",
                    f"<span class='warn'>the test split was scored {test['times_scored']} "
                    "times; only the first look (above) is unbiased: publish that one</span>",
                )
            )
            for look in test.get("looks", []):
                cut = ", search cut short" if look.get("search_cut_short") else ""
                rows.append(
                    (
                        f"look {look['look']}",
                        f"trial #{look['trial_number']}: {_e(m)} "
                        f"{_num(look['score'])} ({_e(look['scored_at'])}{cut})",
                    )
                )
        if test.get("metrics"):
            rows.append(("test metrics", ", ".join(f"{_e(k)} {_num(v)}" for k, v in test["metrics"].items())))
        for e in (test.get("largest_errors") or [])[:3]:  # regression
            rows.append(
                (
                    "largest error",
                    f"row {_e(e['row'])}: actual {_num(e['actual'])}, predicted {_num(e['predicted'])} "
                    f"(error {e['error']:+.4g})",
                )
            )
    else:
        sealed = "sealed until the budget is reached" if stopped else "not scored yet"
        rows.append(("held-out test", f"{sealed} (it is scored once, after the search)"))
    return rows


def _trials_section(study: Any) -> str:
    from tuner.views.findings import cv_value

    trials = study.get_trials(deepcopy=False)
    if not trials:
        return ""
    names = sorted({k for t in trials for k in t.params})
    head = "".join(f"<th>{_e(h)}</th>" for h in ["#", "state", "CV mean (folds)", "duration", *names, "note"])
    rows = []
    for t in trials:
        state = t.state.name.lower()
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        note = (
            t.user_attrs.get("pruned_reason")
            or t.user_attrs.get("error")
            or t.user_attrs.get("diagnosis")
            or ""
        )
        cv = cv_value(t)
        cells = [
            f"<td class='num'>{t.number}</td>",
            f"<td class='state-{_e(state)}'>{_e(state)}</td>",
            f"<td class='num'>{_num(cv['value'])} ({cv['folds']})</td>",
            f"<td class='num'>{'-' if dur is None else f'{dur:.1f}s'}</td>",
            *(f"<td>{_param(t.params[n]) if n in t.params else ''}</td>" for n in names),
            f"<td class='muted'>{_e(str(note)[:300])}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<h2>Trials</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def _diagnoses_section(s: dict[str, Any]) -> str:
    diag = s.get("diagnoses")
    if not diag or not diag.get("trials"):
        return ""
    counts = ", ".join(f"{_e(k)} {v}" for k, v in diag["counts"].items() if v)
    rows = "".join(
        f"<tr><td class='num'>{r['number']}</td><td>{_e(r['state'])}</td><td class='num'>{_num(r['value'])}</td>"
        f"<td>{_e(r['diagnosis'])}</td><td class='muted'>{_e(r.get('text') or r.get('evidence', {}).get('rule', ''))}</td></tr>"
        for r in diag["trials"]
    )
    out = (
        f"<h2>Diagnoses</h2><p>{counts}</p><table><tr><th>#</th><th>state</th><th>CV mean</th>"
        f"<th>diagnosis</th><th>why</th></tr>{rows}</table>"
    )
    out += "".join(f"<p class='warn'>{_e(n)}</p>" for n in diag.get("notes", []))
    for name, rem in diag.get("remedies", {}).items():
        support = "".join(f"<li>this study: {_e(x)}</li>" for x in rem.get("supported_by", []))
        out += f"<p><b>{_e(name)}</b>: try {_e(rem['remedy'])}</p>" + (
            f"<ul>{support}</ul>" if support else ""
        )
    return out


def _importances_section(s: dict[str, Any]) -> str:
    imp = s.get("importances") or {}
    if "values" in imp:
        return "<h2>Parameter importances</h2>" + _table([(k, _num(v, 3)) for k, v in imp["values"].items()])
    if imp.get("skipped"):
        return f"<h2>Parameter importances</h2><p class='muted'>skipped: {_e(imp['skipped'])}</p>"
    return ""


_CAPTIONS = {
    "optimization_history": "each trial's cross-validated score, and the best so far",
    "param_importances": "Optuna's parameter importances (its default evaluator) over the completed trials",
    "parallel_coordinate": "completed trials: parameters against the score",
    "learning_curves": "validation score per step (fold × max_epochs + epoch) of the best and a few pruned trials",
}


def _plots_section(study: Any, config: StudyConfig) -> str:
    from tuner.views.plots import figure_png, study_figures

    figures, skipped = study_figures(
        study, config.objective.metric, epochs_per_fold=config.training.max_epochs
    )
    parts = ["<h2>Plots</h2>"]
    for name, fig in figures.items():
        data = base64.b64encode(figure_png(fig)).decode("ascii")
        parts.append(
            f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(name.replace('_', ' '))}: {_e(_CAPTIONS.get(name, ''))}</figcaption></figure>"
        )
    parts += [
        f"<p class='muted'>{_e(name.replace('_', ' '))}: not drawn ({_e(why)})</p>"
        for name, why in skipped.items()
    ]
    return "".join(parts)


def render_html(config: StudyConfig, study: Any, summary: dict[str, Any]) -> str:
    """The report page as one HTML string."""
    title = f"tuner study {summary['study']}"
    body = "".join(
        [
            f"<h1>{_e(title)}</h1>",
            f"<p class='muted'>from {_e(config.source_file)}</p>",
            _summary_section(summary),
            _diagnoses_section(summary),
            _importances_section(summary),
            _plots_section(study, config),
            _trials_section(study),
        ]
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def write_html(config: StudyConfig, study: Any, summary: dict[str, Any], path: str | Path) -> Path:
    """Write the report page to ``path`` (its folder must exist) and return the path."""
    from tuner.errors import ConfigError

    out = Path(path)
    if not out.parent.exists():
        raise ConfigError(
            f"--html {path}: folder {out.parent} does not exist; create it or choose another path"
        )
    if out.is_dir():
        raise ConfigError(f"--html {path} is a folder: give a file name, e.g. --html {out / 'report.html'}")
    page = render_html(config, study, summary)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--html {path}: cannot write it ({e.strerror or e}); choose another path") from e
    return out
