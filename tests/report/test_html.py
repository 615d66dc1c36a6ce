"""The HTML report of a run folder: links, tables, escaping, scans, compares, a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classwise.errors import UsageError
from classwise.fileio import write_json, write_npz
from classwise.report import (
    Examples,
    save_run_pictures,
    write_compare_report,
    write_report,
)

NAMES = ["zero", "one", "<b>&two", "three", "four"]


class _Page(HTMLParser):
    """Collects image sources and, per table, its body rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.classes: list[str] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.classes += (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self.tables.append([])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[-1].append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _fake_run(run_dir: Path, channels: int = 3, size: int = 16, scan: bool = False) -> Path:
    n = len(NAMES)
    rng = np.random.default_rng(0)
    masks = rng.random((n, size, size), dtype=np.float32)
    write_npz(run_dir / "patterns.npz", classes=np.arange(n),
              canvases=rng.random((n, channels, size, size), dtype=np.float32), masks=masks,
              patterns=masks > 0.9)
    powers = rng.random(n).round(3).tolist()
    rows = [{"class": c, "name": name, "canvas_split": "test", "canvas_index": 7 * c,
             "pixels": 12, "predictive_power": powers[c],
             "by_source": [None if s == c else round(powers[c] * s / n, 3) for s in range(n)],
             "no_pattern": 0.01,
             "random_pixels": 0.02, "components": 3, "largest_component_share": 0.5,
             "on_object": 0.75, "seconds": 1.5} for c, name in enumerate(NAMES)]
    write_json(run_dir / "results.json", {
        "settings": {"model": "small_cnn", "data": "shapes", "preset": "fast",
                     "budget_pixels": 12, "seed": 0, "versions": {"numpy": "2.0"}},
        "classes": rows, "mean_predictive_power": float(np.mean(powers))})
    if scan:
        write_json(run_dir / "scan.json", {
            "verdict": "backdoored", "flagged": [2], "method": "mad", "threshold": 2.0,
            "statistic": "pixels",
            "classes": [{"class": c, "anomaly_index": 3.5 if c == 2 else 0.3 * c,
                         "pixels": 12, "predictive_power": powers[c]} for c in range(n)]})
    return run_dir


def _examples(channels: int = 3, size: int = 16) -> Examples:
    images = np.random.default_rng(2).random((3, channels, size, size), dtype=np.float32)
    return Examples(images, images, np.array([0, 1, 3]), np.array([2, 2, 3]), NAMES, 2)


def _assert_images_exist(report: Path, page: _Page) -> None:
    for src in page.images:
        assert (report.parent / src).is_file(), src


def test_report_links_existing_pictures_one_row_per_class(tmp_path):
    run = _fake_run(tmp_path, scan=True)
    save_run_pictures(run, examples={2: _examples()})
    report = write_report(run)
    page = _parse(report)
    _assert_images_exist(report, page)
    assert {"overview.png", "anomaly.png", "flips.png", "class_2/examples.png"} <= set(page.images)
    with Image.open(run / "flips.png") as picture:  # a heat map: target x source
        assert picture.width >= 400 and picture.height >= 300
    assert len([s for s in page.images if s.endswith("canvas.png")]) == len(NAMES)
    power_table = next(t for t in page.tables if len(t[0]) == 8)  # with "on object"
    assert [row[1] for row in power_table] == NAMES
    assert "verdict backdoored" in report.read_text() and "flagged" in page.classes
    with Image.open(run / "overview.png") as picture:
        assert picture.width >= 600 and picture.height >= 300


def test_text_is_escaped(tmp_path):
    report = write_report(_fake_run(tmp_path), title="a <i>title</i>")
    text = report.read_text()
    assert "<b>&two" not in text and "&lt;b&gt;&amp;two" in text
    assert "<i>title" not in text


def test_report_without_pictures_or_scan(tmp_path):
    report = write_report(_fake_run(tmp_path, channels=1))
    page = _parse(report)
    assert page.images == []
    assert "verdict" not in page.classes
    assert sum(len(t) == len(NAMES) for t in page.tables) == 1


def test_grey_run_pictures(tmp_path):
    run = _fake_run(tmp_path, channels=1, size=28)
    written = save_run_pictures(run)
    assert len(written) == 3 * len(NAMES) + 2  # the class pictures, overview and flips
    with Image.open(run / "class_0" / "canvas.png") as picture:
        assert picture.mode == "L" and picture.size == (140, 140)
    with Image.open(run / "overview.png") as picture:
        full_width = picture.width
    save_run_pictures(run, overview_limit=2)
    with Image.open(run / "overview.png") as picture:
        assert picture.width < full_width / 2


def test_missing_or_broken_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="results.json not found"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        write_report(tmp_path)
    run = _fake_run(tmp_path / "run")
    write_npz(run / "patterns.npz", classes=np.arange(2))
    with pytest.raises(UsageError, match="lacks canvases, masks, patterns"):
        save_run_pictures(run)


def test_compare_report(tmp_path):
    write_json(tmp_path / "compare.json", {
        "runs": [{"label": "natural", "path": "runs/a"}, "runs/<b>"],
        "classes": [{"class": c, "name": NAMES[c], "predictive_power": [0.1 * c, 0.2],
                     "pixels": 12} for c in range(3)],
        "means": {"predictive_power": [0.1, 0.2]}})
    Image.new("RGB", (60, 40), "white").save(tmp_path / "compare.png")
    report = write_compare_report(tmp_path)
    page = _parse(report)
    assert page.images == ["compare.png"]
    per_class = page.tables[-1]
    assert len(per_class) == 3 and per_class[1][2:] == ["0.100", "0.200", "12"]
    assert ["predictive power", "0.100", "0.200"] in page.tables[1]
    assert "runs/&lt;b&gt;" in report.read_text()


CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var th = Array.from(document.querySelectorAll("th"))
    .find(function (h) { return h.textContent === "predictive power"; });
  th.click();
  var order = Array.from(th.closest("table").tBodies[0].rows)
    .map(function (r) { return r.cells[0].textContent; });
  document.body.setAttribute("data-check", ok.length + "/" + images.length + " " + order);
});
</script></body>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not available")
    return path


def test_report_renders_in_chromium(tmp_path):
    browser = _chromium()
    run = _fake_run(tmp_path / "run", scan=True)
    save_run_pictures(run, examples={2: _examples()})
    report = write_report(run)
    checked = run / "check.html"
    checked.write_text(report.read_text().replace("</body>", CHECK_SCRIPT))
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'data-check="(\d+)/(\d+) ([\d,]+)"', dom)
    assert match, dom[-500:]
    loaded, total, order = int(match[1]), int(match[2]), match[3]
    assert total == len(_parse(report).images) > len(NAMES) and loaded == total
    powers = {row["class"]: row["predictive_power"] for row in
              json.loads((run / "results.json").read_text())["classes"]}
    assert [int(c) for c in order.split(",")] == sorted(powers, key=powers.get)
