"""twolayer: a web service that trains two-layer neural networks for binary classification."""

__version__ = "0.2.0"
