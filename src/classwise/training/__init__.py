"""Training of built-in architectures in the natural, backdoor and adversarial settings.

Importing the package registers the settings (see :data:`SETTINGS`).
"""

from classwise.training import adversarial, backdoor  # noqa: F401  (register the settings)
from classwise.training.settings import SETTINGS, Setting, make_setting, register_setting
from classwise.training.train import TrainedModel, fit, train

__all__ = ["SETTINGS", "Setting", "TrainedModel", "fit", "make_setting", "register_setting",
           "train"]
