"""Build a classifier from the user's code and load a state_dict into it.

A code spec is ``path/to/file.py:NAME``, ``package.module:NAME``, ``torchvision:NAME`` or
``timm:NAME``. ``NAME`` in the user's code is a factory: a function (or class) returning an
``nn.Module``. It is called with no arguments, except ``num_classes=`` and ``image_shape=``
``(C, H, W)``, each passed when known and when the factory has a parameter of that name.
torchvision and timm models are always built without pretrained weights (nothing is ever
downloaded); their weights come from a file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from classwise.errors import UsageError

HUBS = ("torchvision", "timm")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
WEIGHT_FORMATS = "a state_dict in .pt, .pth or .safetensors"


def describe(error: BaseException) -> str:
    """One line of an exception's message (or its type), for one-line errors.

    A multi-line message (TorchScript's, say) ends with the cause, so its last line is kept.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(error).__name__


def is_code_spec(spec: str) -> bool:
    """Whether ``spec`` is ``WHERE:NAME`` (a factory) rather than the path of a file."""
    where, sep, name = spec.rpartition(":")
    return bool(sep and where and re.fullmatch(r"[\w.-]+", name)) and not Path(spec).exists()


def build_model(spec: str, *, weights: str | Path | None = None, num_classes: int | None = None,
                image_shape: tuple[int, int, int] | None = None) -> nn.Module:
    """The model that the code spec ``WHERE:NAME`` builds, with ``weights`` loaded when given."""
    where, _, name = spec.rpartition(":")
    if where in HUBS:
        model = _build_from_hub(where, name, weights, num_classes, image_shape)
    else:
        folder = Path(where).resolve().parent if where.endswith(".py") else Path.cwd()
        with _on_sys_path(folder):
            factory = _find_factory(where, name)
            known = {"num_classes": num_classes, "image_shape": image_shape}
            accepted = _parameter_names(factory)
            model = _call(factory, spec, **{k: v for k, v in known.items()
                                            if v is not None and k in accepted})
    if weights is not None:
        load_weights(model, weights)
    return model


def _build_from_hub(hub: str, name: str, weights: str | Path | None, num_classes: int | None,
                    image_shape: tuple[int, int, int] | None) -> nn.Module:
    try:
        package = importlib.import_module(hub)
    except ImportError:
        raise UsageError(f"{hub} is not installed; pip install 'classwise[vision]'") from None
    if weights is None:
        raise UsageError(f"{hub}:{name} needs weights, and classwise never downloads them; "
                         f"give --weights with {WEIGHT_FORMATS}")
    options: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if hub == "torchvision":
        return _call(package.models.get_model, f"{hub}:{name}", name=name, weights=None,
                     **options)
    if image_shape is not None:
        options["in_chans"] = image_shape[0]
    return _call(package.create_model, f"{hub}:{name}", model_name=name, pretrained=False,
                 **options)


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Let the user's code import its neighbours while it is imported and called."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            sys.path.remove(entry)


def _find_factory(where: str, name: str) -> Callable[..., Any]:
    module = _import_file(Path(where)) if where.endswith(".py") else _import_module(where)
    factory = getattr(module, name, None)
    if not callable(factory):
        names = ", ".join(_callables(module)) or "none"
        raise UsageError(f"{where} has no callable {name!r}; its callables are: {names}; "
                         f"give one as {where}:NAME")
    return factory


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UsageError(f"no file {path}; give file.py:FACTORY with the path of a Python file")
    name = "classwise_factory_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise UsageError(f"importing {path} failed ({describe(e)}); fix the file") from e
    return module


def _import_module(where: str) -> ModuleType:
    try:
        return importlib.import_module(where)
    except Exception as e:
        raise UsageError(f"cannot import {where} ({describe(e)}); check the module path, install "
                         "its package, or run classwise from the folder that holds it") from e


def _callables(module: ModuleType) -> list[str]:
    """Public functions and classes defined in ``module`` (not the ones it imports)."""
    return sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                  and getattr(v, "__module__", None) == module.__name__)


def _parameter_names(factory: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def _call(factory: Callable[..., Any], spec: str, **kwargs: Any) -> nn.Module:
    try:
        model = factory(**kwargs)
    except Exception as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise UsageError(f"building {spec}({shown}) failed ({describe(e)}); "
                         "fix the factory or its arguments") from e
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module; "
                         "make it return the model")
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load the state_dict in ``path`` into ``model``; a one-line error when it does not fit.

    Checkpoints that wrap the state_dict under ``state_dict``, ``model_state_dict``, ``model``
    or ``net``, or whose keys carry ``module.`` (DataParallel) or ``_orig_mod.``
    (torch.compile) prefixes, load too.
    """
    path = Path(path)
    state = _unwrap(_read_weights(path), path)
    own = model.state_dict()
    for prefix in WRAPPER_PREFIXES:
        if not any(k.startswith(prefix) for k in own):
            consume_prefix_in_state_dict_if_present(state, prefix)
    problem = _mismatch(own, state)
    if problem:
        raise UsageError(f"weights {path} do not fit the model: {problem}; give weights saved "
                         "from this architecture with the same number of classes")
    model.load_state_dict(state)


def _read_weights(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"no weights file {path}; give {WEIGHT_FORMATS}")
    if path.suffix == ".safetensors":
        load = _safetensors_loader()
    else:
        load = partial(torch.load, map_location="cpu", weights_only=True)
    try:
        return load(path)
    except Exception as e:
        raise UsageError(f"cannot read weights {path} ({type(e).__name__}: {describe(e)}); "
                         "save them with torch.save(model.state_dict(), path) or safetensors"
                         ) from None


def _safetensors_loader() -> Callable[[Path], dict[str, torch.Tensor]]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UsageError("safetensors is not installed; "
                         "pip install 'classwise[safetensors]'") from None
    return load_file


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(obj: Any, path: Path) -> Any:
    """The state_dict in a loaded checkpoint, looking inside the usual wrapping keys."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], path)
        found = f"a dict with keys {', '.join(map(str, list(obj)[:8]))}"
    else:
        found = f"a {type(obj).__name__}"
    raise UsageError(f"{path} holds {found}, not a state_dict (nor one under "
                     f"{', '.join(WRAPPER_KEYS)}); save torch.save(model.state_dict(), path)")


def _mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """The first missing, unexpected and mis-shaped keys, or '' when ``state`` fits."""
    missing = [repr(k) for k in own if k not in state]
    unexpected = [repr(k) for k in state if k not in own]
    shapes = [f"{k!r} is {tuple(state[k].shape)} in the file but {tuple(own[k].shape)} in the "
              "model" for k in own if k in state and state[k].shape != own[k].shape]
    return "; ".join(_first(kind, items) for kind, items in (
        ("missing key", missing), ("unexpected key", unexpected), ("shape of", shapes)) if items)


def _first(kind: str, items: list[str]) -> str:
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return f"{kind} {items[0]}{more}"
