"""One place for progress bars, switchable off (tqdm underneath)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr with ETA, or a silent pass-through when ``enabled`` is False."""
    return tqdm(iterable, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)
