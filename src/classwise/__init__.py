"""classwise: reveal what an image classifier has learned, class by class, in pixel space.

The public API mirrors the ``classwise`` command one-to-one::

    import classwise
    trained = classwise.train("mnist5k", epochs=3, out="runs/mnist")
    result = classwise.reveal("runs/mnist", "mnist5k", budget=0.05)
    result.save("runs/mnist-reveal")
"""

from classwise.compare import CompareResult, compare
from classwise.data import load_data
from classwise.data.base import Dataset, Split
from classwise.demo import demo
from classwise.errors import ClasswiseError, RunError, UsageError
from classwise.evaluation.transfer import evaluate
from classwise.models import load_model
from classwise.results import RevealResult
from classwise.reveal import merge, reveal
from classwise.scan import ScanResult, scan, scan_models
from classwise.search import FoundPatterns, find_patterns
from classwise.sources import DataSource, ModelSource
from classwise.training import train

__version__ = "0.1.0"

__all__ = ["ClasswiseError", "CompareResult", "DataSource", "Dataset", "FoundPatterns",
           "ModelSource", "RevealResult", "RunError", "ScanResult", "Split", "UsageError",
           "compare", "demo", "evaluate", "find_patterns", "load_data", "load_model", "merge",
           "reveal", "scan", "scan_models", "train"]
