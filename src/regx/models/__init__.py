"""Image classifiers: every model is a `Classifier` with `features(x)` and a replaceable `head`."""

from regx.models.base import Classifier

__all__ = ["Classifier"]
