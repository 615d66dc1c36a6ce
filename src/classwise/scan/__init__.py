"""Backdoor scanning: class-wise patterns or Neural Cleanse, with the MAD outlier rule."""

from classwise.scan.scan import METHODS, ScanResult, scan

__all__ = ["METHODS", "ScanResult", "scan"]
