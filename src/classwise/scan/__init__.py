"""Backdoor scanning: class-wise patterns or Neural Cleanse, with the MAD outlier rule."""

from classwise.scan.scan import METHODS, ScanResult, scan
from classwise.scan.zoo import scan_models

__all__ = ["METHODS", "ScanResult", "scan", "scan_models"]
