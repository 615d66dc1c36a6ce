"""Pictures and the shareable HTML report of a classwise run folder."""

from __future__ import annotations

from classwise.report.figures import (
    Examples,
    anomaly_figure,
    budget_curve_figure,
    examples_picture,
    mask_picture,
    overview_figure,
    pattern_picture,
    save_class_pictures,
)
from classwise.report.html import save_run_pictures, write_compare_report, write_report

__all__ = ["Examples", "anomaly_figure", "budget_curve_figure", "examples_picture", "mask_picture",
           "overview_figure", "pattern_picture", "save_class_pictures", "save_run_pictures",
           "write_compare_report", "write_report"]
