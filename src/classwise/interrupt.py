"""Ctrl-C at safe points, so the state a long loop saves is never torn.

A search step draws a batch (advancing its sampler), changes the masks in place and then
counts the step. A ``KeyboardInterrupt`` raised between two of those leaves a state that no
uninterrupted run ever had, and resuming from it gives other results. Inside
:func:`safe_points` the first Ctrl-C only sets :attr:`SafePoints.requested`; the loop saves
its state at the end of the step and raises ``KeyboardInterrupt`` itself. A second Ctrl-C
stops at once (nothing is saved then; the last regular checkpoint stands).

Only the main thread can own a signal handler, and a process started with SIGINT ignored
(a background job of a non-interactive shell) keeps ignoring it: in both cases the loop
runs as it would without this module.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class SafePoints:
    """Whether a Ctrl-C is waiting to be honoured at the loop's next safe point."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.requested = True
        print("\nclasswise: finishing the current step to save it (Ctrl-C again to stop at "
              "once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` when a Ctrl-C came since the last safe point."""
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def safe_points() -> Iterator[SafePoints]:
    """Defer Ctrl-C to the safe points of the loop inside (see the module's docstring)."""
    current = signal.getsignal(signal.SIGINT)
    outer = getattr(current, "__self__", None)
    if isinstance(outer, SafePoints):  # nested: the outer loop's Ctrl-C is ours too
        yield outer
        return
    points = SafePoints()
    owns = (threading.current_thread() is threading.main_thread()
            and current is signal.default_int_handler)
    if owns:
        signal.signal(signal.SIGINT, points._handle)
    try:
        yield points
    finally:
        if owns:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    points.check()  # a Ctrl-C that came after the loop's last safe point
