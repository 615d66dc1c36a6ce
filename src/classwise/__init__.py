"""classwise: reveal what an image classifier has learned, class by class, in pixel space."""

__version__ = "0.1.0"
