"""Training of built-in architectures in the natural, backdoor and adversarial settings."""

from classwise.training.train import TrainedModel, fit, train

__all__ = ["TrainedModel", "fit", "train"]
