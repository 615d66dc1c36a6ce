"""Errors raised for the user's problems, in the user's words.

Every error says what was wrong and how to fix it, in one line. The CLI prints
the message (no traceback unless ``--debug``) and exits with the error's code.
"""

from __future__ import annotations


class ClasswiseError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(ClasswiseError):
    """Bad arguments or bad input files (exit status 2)."""

    exit_code = 2


class RunError(ClasswiseError):
    """A failure while running on valid-looking input (exit status 1)."""

    exit_code = 1
