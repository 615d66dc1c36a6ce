"""The search engine: one verb, :func:`find_patterns`, over composable parts.

Objectives and optimisers are registries (:mod:`classwise.search.objectives`,
:mod:`classwise.search.optimizers`); presets are compositions of searches
(:mod:`classwise.search.config`); :class:`~classwise.search.find.Engine` runs them with
chunking, out-of-memory retries and checkpoints for every caller.
"""

from classwise.search.config import PRESETS, SearchConfig, make_plan
from classwise.search.find import FoundPatterns, find_patterns
from classwise.search.objectives import Objective, register_objective
from classwise.search.optimizers import Optimizer, register_optimizer

__all__ = ["PRESETS", "FoundPatterns", "Objective", "Optimizer", "SearchConfig",
           "find_patterns", "make_plan", "register_objective", "register_optimizer"]
