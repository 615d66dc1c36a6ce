"""The shareable report of a run folder: pictures drawn from its files and one HTML page.

The page is self-contained apart from relative image paths: inline CSS, a few lines of
inline JavaScript to sort tables, no network. Pictures that are missing are left out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classwise.errors import UsageError
from classwise.fileio import save_figure, write_text
from classwise.report.figures import (
    DPI,
    Examples,
    anomaly_figure,
    budget_curve_figure,
    class_labels,
    dense_figure,
    flips_figure,
    overview_figure,
    save_class_pictures,
)

PATTERN_KEYS = ("classes", "canvases", "masks", "patterns")
CLASS_PICTURES = (("canvas", "canvas"), ("mask", "mask"), ("pattern", "pattern"),
                  ("examples", "predictions before and after stamping the pattern"))
TABLE_COLUMNS = (("class", "class"), ("name", "name"), ("pixels", "pixels"),
                 ("predictive_power", "predictive power"), ("no_pattern", "no pattern"),
                 ("random_pixels", "random pixels"), ("components", "components"),
                 ("on_object", "on object"))

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2329;
 margin:0 auto;max-width:1200px;padding:1.5rem 2rem 4rem;background:#fafbfc}
h1{font-size:1.7rem;margin:.2rem 0}h2{font-size:1.25rem;margin:2.2rem 0 .7rem;
 border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
.sub{color:#5b6670;margin:0}
table{border-collapse:collapse;background:#fff;font-size:.9rem}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e6eaef;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;background:#eef2f6}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
tr.flagged td{background:#fdecea}
img{max-width:100%;height:auto}
img.wide,img.chart{display:block;background:#fff;border:1px solid #dde3ea;margin:.5rem 0}
img.chart{max-width:min(100%,620px)}
table.settings td{text-align:left}
.verdict{font-size:1.6rem;font-weight:700;padding:.8rem 1.2rem;border-radius:8px;
 display:inline-block;color:#fff}
.verdict.backdoored{background:#c62828}.verdict.clean{background:#2e7d32}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:.8rem 1rem;
 margin-bottom:1rem}
.card.flagged{border:2px solid #c62828}
.card h3{margin:0 0 .3rem;font-size:1.05rem}
.stats{color:#5b6670;font-size:.85rem;margin:0 0 .6rem}
.pics{display:flex;gap:.8rem;flex-wrap:wrap;align-items:flex-end}
figure{margin:0;text-align:center;font-size:.8rem;color:#5b6670}
figure img{border:1px solid #dde3ea;background:#fff;image-rendering:pixelated}
figure.mask img{image-rendering:auto}
.pics figure img{height:160px;width:auto}
.pics figure.examples img{height:auto;max-height:320px;image-rendering:auto}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var d = (isNaN(x) || isNaN(y)) ? x.localeCompare(y) : x - y;
        return up ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _read_json(path: Path) -> Any:
    """A JSON file of the run folder, or a one-line UsageError naming it."""
    if not path.is_file():
        raise UsageError(f"{path} not found; give a run folder written by classwise")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON ({err}); rerun the command that wrote it")\
            from None


def _read_optional_json(path: Path) -> Any:
    return _read_json(path) if path.is_file() else None


def _class_names(results: Mapping[str, Any]) -> dict[int, str]:
    return {int(row["class"]): str(row.get("name", row["class"]))
            for row in results.get("classes", [])}


def _load_patterns(run_dir: Path) -> dict[str, np.ndarray]:
    path = run_dir / "patterns.npz"
    if not path.is_file():
        raise UsageError(f"{path} not found; give a run folder written by classwise reveal")
    with np.load(path) as data:
        missing = [key for key in PATTERN_KEYS if key not in data]
        if missing:
            raise UsageError(f"{path} lacks {', '.join(missing)}; expected arrays "
                             f"{', '.join(PATTERN_KEYS)}")
        return {key: data[key] for key in PATTERN_KEYS}


def save_run_pictures(run_dir: str | Path, examples: Mapping[int, Examples] | None = None,
                      overview_limit: int = 50) -> list[Path]:
    """Draw the pictures of a run folder from ``patterns.npz``, ``results.json`` and (for a
    scan) ``scan.json``: ``class_<c>/{canvas,mask,pattern}.png`` (plus ``examples.png`` for
    classes in ``examples``), ``overview.png`` (the first ``overview_limit`` classes),
    ``anomaly.png`` and, from ``dense.npz``, ``dense.png``. Returns the paths written.
    """
    run_dir = Path(run_dir)
    results = _read_json(run_dir / "results.json")
    arrays = _load_patterns(run_dir)
    names = _class_names(results)
    power = {int(row["class"]): row.get("predictive_power")
             for row in results.get("classes", [])}
    examples = examples or {}
    written = []
    for i, c in enumerate(int(c) for c in arrays["classes"]):
        written += save_class_pictures(run_dir / f"class_{c}", arrays["canvases"][i],
                                       arrays["masks"][i], arrays["patterns"][i],
                                       examples.get(c))
    shown = slice(0, overview_limit)
    titles = [_overview_title(int(c), names.get(int(c), str(c)), power.get(int(c)))
              for c in arrays["classes"][shown]]
    written.append(run_dir / "overview.png")
    save_figure(overview_figure(arrays["canvases"][shown], arrays["masks"][shown],
                                arrays["patterns"][shown], titles), written[-1], dpi=DPI)
    flips = flips_panel(results)
    if flips is not None:
        written.append(run_dir / "flips.png")
        save_figure(flips_figure({"": flips}), written[-1], dpi=DPI)
    curves = budget_curves(results)
    if curves is not None:
        written.append(run_dir / "budget_curve.png")
        save_figure(budget_curve_figure(*curves), written[-1], dpi=DPI)
    scan = _read_optional_json(run_dir / "scan.json")
    if scan is not None:
        rows = scan.get("classes", [])
        classes = [int(row["class"]) for row in rows]
        written.append(run_dir / "anomaly.png")
        save_figure(anomaly_figure(classes, [names.get(c, str(c)) for c in classes],
                                   [row["anomaly_index"] for row in rows],
                                   float(scan["threshold"]), scan.get("flagged", [])),
                    written[-1], dpi=DPI)
        if (run_dir / "dense.npz").is_file():
            with np.load(run_dir / "dense.npz") as f:
                dense = {k: f[k] for k in f.files if k != "classes"}
            flagged = [classes.index(c) for c in scan.get("flagged", []) if c in classes]
            written.append(run_dir / "dense.png")
            labels = class_labels(classes, [names.get(c, str(c)) for c in classes])
            save_figure(dense_figure(dense, labels, flagged), written[-1], dpi=DPI)
    return written


def flips_panel(results: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray] | None:
    """Target names, source names and the target x source shares (``by_source``) of a run's
    ``results.json``, or None where its records have none."""
    rows = [r for r in results.get("classes", []) if r.get("by_source") is not None]
    if not rows:
        return None
    sources = max(len(r["by_source"]) for r in rows)
    names = {**{i: str(i) for i in range(sources)}, **_class_names(results)}
    matrix = np.array([[np.nan if v is None else v for v in r["by_source"]] for r in rows])
    return [names[int(r["class"])] for r in rows], [names[i] for i in range(sources)], matrix


def budget_curves(results: Mapping[str, Any]) -> tuple[list[float], dict[str, list[float]]] | None:
    """The pixel counts and, per class (the first ten) and for the mean, the predictive
    power of a run's budget curves, or None where it has none."""
    rows = [r for r in results.get("classes", []) if "budget_curve" in r]
    if not rows:
        return None
    series = {str(r["name"]): [v for _, v in r["budget_curve"]] for r in rows[:10]}
    series["mean"] = list(np.mean([[v for _, v in r["budget_curve"]] for r in rows], axis=0))
    return [p for p, _ in rows[0]["budget_curve"]], series


def _overview_title(c: int, name: str, power: float | None) -> str:
    head = str(c) if name == str(c) else f"{c} {name}"
    return head if power is None else f"{head}\npp {power:.2f}"


def _fmt(value: Any) -> str:
    """A value as table text: floats to three decimals, lists and dicts compactly."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _cell(value: Any) -> str:
    """A sortable ``<td>``: numbers right-aligned and sorted by value."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    key = json.dumps(value) if number else _fmt(value)  # "Infinity" sorts as a number in JS
    css = ' class="num"' if number else ""
    return f'<td{css} data-sort="{html.escape(key)}">{html.escape(_fmt(value))}</td>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "sortable",
           row_classes: Sequence[str] | None = None) -> str:
    """A table; ``css`` ``sortable`` makes its columns sort on a click."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = list(rows)
    row_classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{css}">' + "".join(_cell(v) for v in row) + "</tr>"
                   for row, css in zip(rows, row_classes, strict=True))
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(run_dir: Path, rel: str, alt: str, css: str = "") -> str:
    """An ``<img>`` for ``rel`` inside ``run_dir``, or nothing when the file is missing."""
    if not (run_dir / rel).is_file():
        return ""
    attr = f' class="{css}"' if css else ""
    return f'<img{attr} src="{html.escape(rel)}" alt="{html.escape(alt)}">'


def _section(heading: str, body: str) -> str:
    """A titled section, or nothing when ``body`` is empty."""
    return f"<section><h2>{html.escape(heading)}</h2>{body}</section>" if body else ""


def _page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>"
            f"</header>{''.join(sections)}<script>{SORT_JS}</script></body></html>\n")


def _settings_table(settings: Mapping[str, Any]) -> str:
    return _table(["setting", "value"], settings.items(), css="settings") if settings else ""


def _class_card(run_dir: Path, row: Mapping[str, Any], flagged: bool) -> str:
    c, name = int(row["class"]), str(row.get("name", row["class"]))
    folder = f"class_{c}"
    figures = "".join(
        f'<figure class="{label}">{img}<figcaption>{html.escape(caption)}</figcaption></figure>'
        for label, caption in CLASS_PICTURES
        if (img := _img(run_dir, f"{folder}/{label}.png", f"{caption}, class {name}")))
    stats = " \u00b7 ".join(f"{key.replace('_', ' ')} {_fmt(value)}"
                            for key, value in row.items() if key not in ("class", "name"))
    css = "card flagged" if flagged else "card"
    return (f'<div class="{css}" id="class-{c}"><h3>{c} \u00b7 {html.escape(name)}</h3>'
            f'<p class="stats">{html.escape(stats)}</p><div class="pics">{figures}</div></div>')


def _scan_section(run_dir: Path, scan: Mapping[str, Any], names: Mapping[int, str]) -> str:
    verdict = str(scan.get("verdict", "unknown"))
    flagged = [int(c) for c in scan.get("flagged", [])]
    statistic = scan.get("statistic")
    flagged_text = ", ".join(f"{c} {names.get(c, '')}".strip() for c in flagged) or "none"
    rows = scan.get("classes", [])
    families = list(rows[0].get("families", {})) if rows else []
    about = (f"flagged: {flagged_text} \u00b7 method {_fmt(scan.get('method'))} \u00b7 "
             f"threshold {_fmt(scan.get('threshold'))} \u00b7 statistic {_fmt(statistic)}"
             + (f" \u00b7 decided by the {scan.get('family')} family" if families else ""))
    keys = ["anomaly_index", "pixels", "predictive_power"]
    if statistic and statistic not in keys:
        keys.append(statistic)
    heads = [k.replace("_", " ") for k in keys] + [f"{f} size" for f in families]
    if families:
        heads.append("found by")
    table = _table(["class", "name", *heads, "flagged"],
                   ([int(r["class"]), names.get(int(r["class"]), str(r["class"])),
                     *(r.get(k) for k in keys), *(r["families"][f]["size"] for f in families),
                     *([r.get("found_by")] if families else []), int(r["class"]) in flagged]
                    for r in rows),
                   row_classes=["flagged" if int(r["class"]) in flagged else "" for r in rows])
    return (f'<p><span class="verdict {html.escape(verdict)}">{html.escape(verdict.upper())}'
            f'</span></p><p>{html.escape(about)}</p>'
            f'{_img(run_dir, "anomaly.png", "anomaly index per class", "chart")}{table}'
            f'{_img(run_dir, "dense.png", "each dense family pattern per class", "chart")}')


def _power_table(classes: Sequence[Mapping[str, Any]], flagged: set[int]) -> str:
    columns = [(key, label) for key, label in TABLE_COLUMNS
               if key != "on_object" or any("on_object" in row for row in classes)]
    return _table([label for _, label in columns],
                  ([row.get(key) for key, _ in columns] for row in classes),
                  row_classes=["flagged" if int(r["class"]) in flagged else "" for r in classes])


def write_report(run_dir: str | Path, title: str | None = None) -> Path:
    """Write ``run_dir/report.html`` from ``results.json`` (and ``scan.json`` when present),
    linking the pictures that exist in the folder. Returns the page's path."""
    run_dir = Path(run_dir)
    results = _read_json(run_dir / "results.json")
    scan = _read_optional_json(run_dir / "scan.json")
    settings = results.get("settings", {})
    classes = results.get("classes", [])
    names = _class_names(results)
    flagged = {int(c) for c in (scan or {}).get("flagged", [])}
    if title is None:
        title = (f"classwise: {settings['model']} on {settings['data']}"
                 if "model" in settings and "data" in settings else f"classwise: {run_dir.name}")
    mean = results.get("mean_predictive_power")
    subtitle = " \u00b7 ".join(
        part for part in (f"{len(classes)} classes",
                          f"mean predictive power {_fmt(mean)}" if mean is not None else "",
                          f"preset {settings['preset']}" if "preset" in settings else "")
        if part)
    sections = [
        _section("Backdoor scan", _scan_section(run_dir, scan, names) if scan else ""),
        _section("Settings", _settings_table(settings)),
        _section("Overview", _img(run_dir, "overview.png", "every class: canvas, mask, pattern",
                                  "wide")),
        _section("Predictive power", _power_table(classes, flagged) if classes else ""),
        _section("What each pattern flips",
                 _img(run_dir, "flips.png", "share of each source class's test images "
                      "classified as the target once stamped", "chart")),
        _section("Predictive power by budget",
                 _img(run_dir, "budget_curve.png", "predictive power by budget", "chart")),
        _section("Classes", "".join(_class_card(run_dir, row, int(row["class"]) in flagged)
                                    for row in classes)),
    ]
    path = run_dir / "report.html"
    write_text(path, _page(title, subtitle, sections))
    return path


def _run_label(run: Any) -> str:
    if isinstance(run, Mapping):
        return str(run.get("label") or run.get("name") or run.get("path"))
    return str(run)


def _compare_means(compare: Mapping[str, Any], n_runs: int) -> dict[str, list]:
    """Summary rows: ``means`` entries and top-level ``mean_*`` lists, one value per run."""
    candidates = {**{k: v for k, v in compare.items() if k.startswith("mean")},
                  **compare.get("means", {})}
    return {key: value for key, value in candidates.items()
            if isinstance(value, list) and len(value) == n_runs}


def _compare_table(classes: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """One row per class; a value given as a list of one per run becomes one column per run."""
    keys = [key for key in dict.fromkeys(k for row in classes for k in row)
            if key not in ("class", "name")]
    split = {key: any(isinstance(row.get(key), list) for row in classes) for key in keys}
    headers = ["class", "name"]
    for key in keys:
        label = key.replace("_", " ")
        headers += [f"{label} \u00b7 {run}" for run in labels] if split[key] else [label]
    rows = []
    for row in classes:
        cells = [row.get("class"), row.get("name", row.get("class"))]
        for key in keys:
            value = row.get(key)
            cells += (list(value or []) + [None] * len(labels))[:len(labels)] if split[key] \
                else [value]
        rows.append(cells)
    return _table(headers, rows)


def write_compare_report(run_dir: str | Path, title: str | None = None) -> Path:
    """Write ``run_dir/report.html`` for a compare run from ``compare.json`` (``runs``: labels
    or ``{label, path}``; ``classes``: per-class dicts whose per-run values are lists in run
    order; ``means`` / ``mean_*``: one value per run) and ``compare.png``. Returns its path."""
    run_dir = Path(run_dir)
    compare = _read_json(run_dir / "compare.json")
    runs = compare.get("runs", [])
    labels = [_run_label(run) for run in runs]
    sources = [run.get("path", "") if isinstance(run, Mapping) else run for run in runs]
    classes = compare.get("classes", [])
    means = _compare_means(compare, len(runs))
    sections = [
        _section("Runs", _table(["run", "source"], zip(labels, sources, strict=True),
                                css="plain")),
        _section("Comparison", _img(run_dir, "compare.png", "comparison of the runs", "wide")),
        _section("What each run's patterns flip",
                 _img(run_dir, "flips.png", "per run, the share of each source class's test "
                      "images classified as the target once stamped", "wide")),
        _section("Means", _table(["measure", *labels],
                                 ([key.replace("_", " "), *value] for key, value in means.items()),
                                 css="plain") if means else ""),
        _section("Per class", _compare_table(classes, labels) if classes else ""),
    ]
    path = run_dir / "report.html"
    write_text(path, _page(title or f"classwise: comparing {', '.join(labels)}",
                           f"{len(runs)} runs \u00b7 {len(classes)} classes", sections))
    return path
