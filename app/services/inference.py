"""The Open Inference Protocol (KServe V2) over the registry: a registered
model's metadata and readiness, and inference with its latest version, a
version by number or by alias (resolved in the database at each request,
as /predict resolves `"model"`)."""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from app.core.errors import Invalid, NotFound
from app.core.settings import get_settings
from app.core.text import ALIAS, MODEL_NAME
from app.db.session import Database
from app.nn import Model
from app.nn.explain import attributions, input_gradient
from app.nn.model import DEFAULT_THRESHOLD, THRESHOLD
from app.services.model_cache import ModelCache
from app.services.prediction import INLINE_ROWS
from app.services.registry import get_model as get_registered
from app.services.registry import resolve, resolve_version
from app.services.runs import get_model

Datatype = Literal["FP64", "FP32"]
DATATYPES: dict[str, type[np.floating[Any]]] = {"FP64": np.float64, "FP32": np.float32}
INPUT = "input"
InputName = Literal["input"]
OutputName = Literal["probability", "label", "gradient", "attribution"]
KNOWN_OUTPUTS: tuple[str, ...] = get_args(OutputName)
OUTPUTS = KNOWN_OUTPUTS[:2]  # sent when no output is asked for
PLATFORM = "twolayer"


class BadInference(Invalid):
    """A request the protocol cannot serve: 400, as inference servers answer."""

    status, title, type = 400, "Bad request", "/problems/bad-inference"
    example = "input 'input' has shape [2, 3]; the model takes [m, 2]"


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] | None = None


_NAME = re.compile(rf"^{MODEL_NAME}$")
_VERSION = re.compile(rf"^([1-9][0-9]{{0,8}}|{ALIAS})$")


def _ref(name: str, version: str | None) -> str:
    """The registry's reference for a model and version of the protocol's paths."""
    if not _NAME.match(name):
        raise NotFound(f"no model is named {name!r}")
    if version is None:
        return name
    if not _VERSION.match(version):
        raise NotFound(f"model {name!r} has no version {version!r}")
    return f"{name}@{version}"


def label_datatype(classes: list[Any]) -> str:
    """The protocol's type of the label tensor: the classes keep their JSON types."""
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


def metadata(*, db: Database, owner: str, name: str, version: str | None) -> dict[str, Any]:
    """The model's metadata (its latest version's tensors, or the version's)."""
    if version is None:
        view = get_registered(db=db, owner=owner, name=name)
        if not view.versions:
            raise NotFound(f"model {name!r} has no versions")
        row, versions = view.versions[0], [str(v.version) for v in view.versions]
    else:
        row = resolve_version(db=db, owner=owner, ref=_ref(name, version))
        versions = [str(row.version)]
    n_x = len(row.feature_names)
    return {
        "name": name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [{"name": INPUT, "datatype": "FP64", "shape": [-1, n_x]}],
        "outputs": [
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "label", "datatype": label_datatype(row.classes), "shape": [-1]},
            {"name": "gradient", "datatype": "FP64", "shape": [-1, n_x]},
            {"name": "attribution", "datatype": "FP64", "shape": [-1, n_x]},
        ],
    }


def ready(*, db: Database, owner: str, name: str, version: str | None) -> bool:
    """True once the reference names a version (its weights exist: versions are
    succeeded runs, which cannot be deleted while registered)."""
    resolve(db=db, owner=owner, ref=_ref(name, version))
    return True


def _features(tensor: Tensor, model: Model) -> np.ndarray:
    """The input's (m, n_x) float64 rows: FP32 data rounded to float32 first."""
    if tensor.name != INPUT:
        raise BadInference(f"the input is named {INPUT!r}, not {tensor.name!r}")
    if tensor.datatype not in DATATYPES:
        raise BadInference(
            f"input {INPUT!r} has datatype {tensor.datatype}; this model takes "
            + " or ".join(DATATYPES)
        )
    if (tensor.parameters or {}).get("binary_data_size") is not None:
        raise BadInference("binary tensor data is not supported: send the data as JSON")
    n_x, shape = model.n_features, tensor.shape
    limit = get_settings().max_predict_instances
    if len(shape) != 2 or shape[1] != n_x or not 1 <= shape[0] <= limit:
        raise BadInference(
            f"input {INPUT!r} has shape {shape}; this model takes [m, {n_x}], m from 1 to {limit}"
        )
    try:
        X = np.asarray(tensor.data, dtype=np.float64)
    except ValueError:
        raise BadInference(f"input {INPUT!r}: its rows are not all of one length") from None
    if X.size != math.prod(shape) or (X.ndim == 2 and X.shape[1] != n_x):
        raise BadInference(
            f"input {INPUT!r} holds {X.size} numbers in shape {list(X.shape)}; shape {shape} "
            f"needs {math.prod(shape)}, flat or as rows of {n_x}"
        )
    X = X.reshape(shape)
    if tensor.datatype == "FP32":
        with np.errstate(over="ignore"):
            X = X.astype(np.float32)
        if not np.isfinite(X).all():
            raise BadInference(f"input {INPUT!r}: a number is beyond FP32's range")
        X = X.astype(np.float64)
    return X


def _threshold(parameters: dict[str, Any] | None) -> float:
    value = (parameters or {}).get("threshold", DEFAULT_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInference(f"parameter threshold must be a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise BadInference(f"parameter threshold {value} is not in [0, 1]") from None
    problem = THRESHOLD.problem("threshold", number)
    if problem is not None:
        raise BadInference(f"parameter {problem}")
    return number


def _outputs(
    model: Model, X: np.ndarray, names: list[str], threshold: float, datatype: str
) -> list[dict[str, Any]]:
    m = len(X)
    probabilities = model.predict_proba(X.T).ravel()
    out_type = datatype if datatype in DATATYPES else "FP64"
    tensors: list[dict[str, Any]] = []
    for name in names:
        if name == "probability":
            data = probabilities.astype(DATATYPES[out_type]).tolist()
            tensors.append({"name": name, "datatype": out_type, "shape": [m], "data": data})
        elif name == "label":
            labels = model.labels(probabilities, threshold)
            kind = label_datatype(list(model.classes))
            data = labels if kind != "BYTES" else [str(label) for label in labels]
            tensors.append({"name": name, "datatype": kind, "shape": [m], "data": data})
        else:  # "gradient" (∂ŷ/∂x) or "attribution" (x·∂ŷ/∂x), per row, FP64
            dX, _ = input_gradient(model, X.T)
            G = dX if name == "gradient" else attributions(X.T, dX)
            shape = [m, model.n_features]
            tensors.append(
                {"name": name, "datatype": "FP64", "shape": shape, "data": G.T.ravel().tolist()}
            )
    return tensors


async def infer(
    *,
    db: Database,
    cache: ModelCache,
    owner: str,
    name: str,
    version: str | None,
    request_id: str | None,
    parameters: dict[str, Any] | None,
    tensor: Tensor,
    outputs: list[tuple[str, dict[str, Any] | None]] | None,
) -> dict[str, Any]:
    """The infer response's document for the named version (or the latest)."""
    resolved = await asyncio.to_thread(resolve, db=db, owner=owner, ref=_ref(name, version))
    names = [n for n, _ in outputs] if outputs else list(OUTPUTS)
    for output, output_parameters in outputs or []:
        if output not in KNOWN_OUTPUTS:
            raise BadInference(f"no output is named {output!r}: {', '.join(KNOWN_OUTPUTS)}")
        if (output_parameters or {}).get("binary_data"):
            raise BadInference("binary tensor data is not supported: ask binary_data false")
    if (parameters or {}).get("binary_data_output"):
        raise BadInference("binary tensor data is not supported: ask binary_data_output false")
    threshold = _threshold(parameters)
    model = cache.get(resolved.run_id, owner, count_miss=False)
    if model is None:
        model = await asyncio.to_thread(
            get_model, db=db, cache=cache, owner=owner, run_id=resolved.run_id
        )
    X = _features(tensor, model)
    if len(X) <= INLINE_ROWS:
        tensors = _outputs(model, X, names, threshold, tensor.datatype)
    else:
        tensors = await asyncio.to_thread(_outputs, model, X, names, threshold, tensor.datatype)
    answer: dict[str, Any] = {"model_name": name, "model_version": str(resolved.version)}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    return answer
