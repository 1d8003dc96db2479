"""Datasets held as tensors, defender/attacker splits, and batching on the device."""

from wrt.data.dataset import Dataset, DatasetUnavailable
from wrt.data.loader import TensorLoader

__all__ = ["Dataset", "DatasetUnavailable", "TensorLoader"]
