"""Backdoor scanning: class-wise pattern sizes with a calibrated verdict, and the Neural Cleanse
and MM-BD baselines."""

from classwise.scan.scan import METHODS, ScanResult, scan
from classwise.scan.zoo import scan_models

__all__ = ["METHODS", "ScanResult", "scan", "scan_models"]
