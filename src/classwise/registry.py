"""Registries of classes by name, whose options are their constructors' keyword arguments.

Attacks (``classwise.attacks``) and training settings (``classwise.training``) register
here, so a name on the command line maps to a class. A class's options are read from its
constructor's signature: the name, the type (from the annotation, else the default) and
the default. From that one source come the listing in ``--help`` and in error messages,
the check of option names, and the parsing of ``NAME=VALUE`` text from the command line.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from classwise.errors import UsageError

T = TypeVar("T")
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
KNOWN = (bool, int, float, str, Path, type(None))


@dataclass(frozen=True)
class Option:
    """One keyword option of a registered class: its name, accepted types and default."""

    name: str
    types: tuple[type, ...]
    default: Any

    @property
    def type_name(self) -> str:
        """``int``, ``float``, ``bool``, ``str``, ``path`` or ``int or str``."""
        names = ["path" if t is Path else t.__name__ for t in self.types
                 if t is not type(None) and not (t is str and Path in self.types)]
        return " or ".join(names) or "none"

    def __str__(self) -> str:
        return f"{self.name}={show(self.default)}"

    def parse(self, text: str) -> Any:
        """The value of ``text`` as this option's type; ``ValueError`` says why not.

        ``none`` is None where the option may be unset; booleans are true/false, yes/no
        or 1/0; a path or a string is kept as given.
        """
        word = text.strip().lower()
        if type(None) in self.types and word == "none":
            return None
        if bool in self.types:
            if word in TRUE + FALSE:
                return word in TRUE
            raise ValueError("is not true or false (also yes/no, 1/0)")
        if str in self.types or Path in self.types:
            return text
        if int in self.types:
            try:
                return int(text)
            except ValueError:
                raise ValueError("is not a whole number") from None
        try:
            value = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        return value


def show(value: Any) -> str:
    """``value`` as the command line spells it: none, true/false, 0.0784314, bottom-right."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class Registry(Generic[T]):
    """Classes of one ``kind`` (``"attack"``, ``"setting"``) registered by name.

    ``fixed`` names the constructor's leading arguments that the caller always passes
    (``image_shape``, ``data``, ``seed``); the keyword arguments after them are the
    options. A class that also takes ``**kwargs`` hands the options it does not name on
    (the backdoor setting passes them to its attack), so they are not checked here.
    """

    def __init__(self, kind: str, fixed: tuple[str, ...]) -> None:
        self.kind, self.fixed = kind, fixed
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Decorator: register the class under ``name`` (also set as its ``name``)."""

        def wrap(cls: type[T]) -> type[T]:
            cls.name = name
            self._classes[name] = cls
            return cls

        return wrap

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; :class:`UsageError` listing the names if none."""
        if name not in self._classes:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of "
                             f"{', '.join(self.names())}")
        return self._classes[name]

    def options(self, name: str) -> list[Option]:
        """The options of ``name``, in the order of its constructor's signature."""
        cls = self.get(name)
        hints = typing.get_type_hints(cls.__init__)
        return [Option(p.name, _types(hints.get(p.name), p.default), p.default)
                for p in inspect.signature(cls).parameters.values()
                if p.name not in self.fixed and p.default is not p.empty]

    def passes_on(self, name: str) -> bool:
        """Whether ``name`` takes other options too (``**kwargs``) and hands them on."""
        return any(p.kind is p.VAR_KEYWORD
                   for p in inspect.signature(self.get(name)).parameters.values())

    def create(self, name: str, *args: Any, **options: Any) -> T:
        """Build ``name`` from its leading arguments (``fixed``, by position or keyword)
        and its ``options``.

        An option that ``name`` does not take is a :class:`UsageError` listing the valid
        ones with their defaults, unless the class hands other options on.
        """
        cls = self.get(name)
        known = {o.name for o in self.options(name)} | set(self.fixed)
        unknown = [k for k in options if k not in known]
        if unknown and not self.passes_on(name):
            raise UsageError(f"unknown option {unknown[0]!r} for {self.kind} {name}; "
                             f"{self.listing(name)}")
        return cls(*args, **options)

    def parse(self, name: str, given: Mapping[str, str], flag: str) -> dict[str, Any]:
        """``given`` (option name -> text, from ``flag NAME=VALUE``) as typed values.

        An unknown name or a value of the wrong type is a one-line :class:`UsageError`
        naming the option and listing the valid ones with their defaults.
        """
        known = {o.name: o for o in self.options(name)}
        values = {}
        for key, text in given.items():
            if key not in known:
                raise UsageError(f"{flag} {key}: unknown option for {self.kind} {name}; "
                                 f"{self.listing(name)}")
            try:
                values[key] = known[key].parse(text)
            except ValueError as err:
                raise UsageError(f"{flag} {key}={text}: {text!r} {err} "
                                 f"({known[key].type_name} expected); {self.listing(name)}"
                                 ) from None
        return values

    def listing(self, name: str) -> str:
        """``valid options are a=1, b=none`` (or ``it takes none``), for messages."""
        options = self.options(name)
        if not options:
            return "it takes none"
        return "valid options are " + ", ".join(map(str, options))

    def help(self, width: int = 88) -> str:
        """One wrapped block per registered class: its options, types and defaults."""
        lines = []
        for name in self.names():
            items = [f"{o} ({o.type_name})" for o in self.options(name)] or ["no options"]
            line = f"  {name}: {items[0]}"
            for item in items[1:]:  # break between options, never inside one
                if len(line) + len(item) + 2 > width:
                    lines.append(line + ",")
                    line = "    " + item
                else:
                    line += ", " + item
            lines.append(line)
        return "\n".join(lines)


def _types(hint: Any, default: Any) -> tuple[type, ...]:
    """The types an option accepts: from its annotation, else from its default (text)."""
    if hint is None:
        return (str,) if default is None else (type(default),)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for t in typing.get_args(hint) if t in KNOWN) or (str,)
    return (hint,) if hint in KNOWN else (str,)
