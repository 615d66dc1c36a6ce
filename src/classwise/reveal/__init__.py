"""Revealing a dataset's classes: pools, canvases, the run and its executors, shards."""

from classwise.reveal.run import RevealSpec, RevealWorker, parse_classes, reveal
from classwise.reveal.shards import merge

__all__ = ["RevealSpec", "RevealWorker", "merge", "parse_classes", "reveal"]
