"""Models: built-in architectures and loading of users' classifiers."""

from classwise.models import lenet, mlp, resnet, small_cnn  # noqa: F401  (register architectures)
from classwise.models.loading import (
    check_model,
    checked_layout,
    default_device,
    fast_layout,
    load_model,
    model_device,
    parameter_count,
    resolve_device,
    save_torchscript,
)
from classwise.models.registry import architectures, create_model, default_arch, register_model

__all__ = ["architectures", "check_model", "checked_layout", "create_model", "default_arch",
           "default_device", "fast_layout", "load_model", "model_device", "parameter_count",
           "register_model", "resolve_device", "save_torchscript"]
