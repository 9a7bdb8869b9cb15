"""The two-layer network engine: pure NumPy, samples as columns (X is (n_x, m)).

Imports numpy and the standard library only (a test enforces it).
"""

from app.nn.metrics import Metrics, classification_metrics, roc_auc
from app.nn.model import Model
from app.nn.network import (
    Cache,
    Gradients,
    Workspace,
    activation_backward,
    activation_forward,
    backward,
    compute_cost,
    forward,
    sigmoid,
)
from app.nn.params import Parameters, initialize, n_parameters
from app.nn.preprocessing import Standardization, encode_labels, stratified_split
from app.nn.samples import SAMPLE_KINDS, make_samples
from app.nn.training import (
    EpochRecord,
    FitResult,
    History,
    Hyperparameters,
    Progress,
    Trainer,
    fit,
)

__all__ = [
    "SAMPLE_KINDS",
    "Cache",
    "EpochRecord",
    "FitResult",
    "Gradients",
    "History",
    "Hyperparameters",
    "Metrics",
    "Model",
    "Parameters",
    "Progress",
    "Standardization",
    "Trainer",
    "Workspace",
    "activation_backward",
    "activation_forward",
    "backward",
    "classification_metrics",
    "compute_cost",
    "encode_labels",
    "fit",
    "forward",
    "initialize",
    "make_samples",
    "n_parameters",
    "roc_auc",
    "sigmoid",
    "stratified_split",
]
