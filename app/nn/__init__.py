"""The two-layer network engine: pure NumPy, samples as columns (X is (n_x, m)).

Imports numpy and the standard library only (a test enforces it).

    network.py          the seed's map as code: forward, cost, backward (the reference)
    workspace.py        the same map in preallocated buffers: the fast form the loop uses
    training.py         the Trainer: mini-batches, validation, early stopping, callbacks
    data.py             its data: the split, standardized, read from a Rows source in blocks
    hyperparameters.py  Hyperparameters, each with its one rule (rules.py)
    checkpoint.py       a trainer's state at an epoch boundary, and its .npz layout
    model.py            a fitted model: predict_proba, predict, its .npz file
"""

from app.nn.data import ROW_GROUP, ArrayRows, Rows
from app.nn.history import EpochHistory, EpochRecord, FitResult
from app.nn.hyperparameters import Hyperparameters
from app.nn.metrics import Metrics, classification_metrics, roc_auc
from app.nn.model import Model
from app.nn.network import (
    Cache,
    Gradients,
    activation_backward,
    activation_forward,
    backward,
    compute_cost,
    forward,
    sigmoid,
)
from app.nn.params import Parameters, initialize, n_parameters
from app.nn.preprocessing import Standardization, check_labels, encode_labels, stratified_split
from app.nn.rules import Rule
from app.nn.samples import SAMPLE_KINDS, make_samples
from app.nn.training import Progress, Trainer, fit
from app.nn.workspace import BatchGradient, Workspace

__all__ = [
    "ROW_GROUP",
    "SAMPLE_KINDS",
    "ArrayRows",
    "BatchGradient",
    "Cache",
    "EpochHistory",
    "EpochRecord",
    "FitResult",
    "Gradients",
    "Hyperparameters",
    "Metrics",
    "Model",
    "Parameters",
    "Progress",
    "Rows",
    "Rule",
    "Standardization",
    "Trainer",
    "Workspace",
    "activation_backward",
    "activation_forward",
    "backward",
    "check_labels",
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
