"""regx: an experiment runner for regularization research in image classification.

Importing this package is cheap (no torch); the heavy modules load on demand.
"""

__version__ = "0.1.0"
