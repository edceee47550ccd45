"""Datasets as uint8 image tensors, and the batch sources that feed the training loop."""

from regx.data.base import DatasetSource
from regx.data.types import ImageData

__all__ = ["DatasetSource", "ImageData"]
