"""A model as one ONNX graph: the whole pipeline, for runtimes nobody here wrote.

    X [N, n_x] ──(Cast to double)── Sub mean ── Div scale ── Clip ±L        standardization
      ── Gemm W1, b1 ── Relu | Tanh ── Gemm W2, b2 ── Sigmoid ── Squeeze     the network
      ── probability [N] (the input's type)
      ── GreaterOrEqual threshold ── Where positive, negative ── label [N]  the classes

Rows are instances, as /predict takes them. The arithmetic is in the model's
own dtype, as /predict's (a float64 model computes a float32 input widened,
then narrows the probability), so a float64 model answers what /predict
answers to ~1e-16 and a float32 one to float32's rounding. `threshold` is an
optional second input (default 0.5, an initializer of the same name).

Overflow: /predict scales a column whose forward pass could overflow by a
power of two (app/nn/model.py). ONNX has no frexp, so the graph clips the
standardized input to ±L instead, L = 2^(maxexp - 11 - e_W) with e_W the
exponent of the weights' row sums (the bound of `Model._limits`): below L no
sum of the pass can overflow, and every input whose standardized value is
within ±L (about 1e300 for float64 weights of order one, 1e34 for float32)
gets /predict's own answer; beyond it, the answer is that of the clipped
input, finite and in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy import select

import app as package
from app.db.models import Dataset, Run
from app.db.session import Database
from app.nn import Model
from app.nn.model import DEFAULT_THRESHOLD
from app.services.model_cache import ModelCache
from app.services.registry import resolve_version
from app.services.runs import get_model

# onnxruntime 1.20 and later load opset 17 at IR version 8 (ONNX 1.12's pair):
# pinned so a newer onnx package does not write a file older runtimes refuse
OPSET = 17
IR_VERSION = 8
Dtype = Literal["float64", "float32"]
ELEMENT: dict[str, int] = {"float64": TensorProto.DOUBLE, "float32": TensorProto.FLOAT}


def _label_tensor(classes: Sequence[Any]) -> tuple[int, np.ndarray, np.ndarray]:
    """The label output's element type and the [negative], [positive] constants:
    the classes keep their JSON types (bool, int64), anything else is a string."""
    negative, positive = classes
    if all(isinstance(c, bool) for c in classes):
        return TensorProto.BOOL, np.array([negative]), np.array([positive])
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return TensorProto.INT64, np.array([negative], np.int64), np.array([positive], np.int64)
    as_text = [str(c).encode() for c in classes]
    return TensorProto.STRING, np.array(as_text[:1], object), np.array(as_text[1:], object)


def clip_bound(model: Model) -> float:
    """L: below it, no sum of the pass (in the model's dtype) on the standardized
    input overflows."""
    e_W = model._limits()[0]
    room = np.finfo(model.params.theta.dtype).maxexp - 3 - 8
    return float(np.ldexp(1.0, room - max(e_W, 0)))


def to_onnx(
    model: Model,
    *,
    dtype: Dtype = "float64",
    name: str,
    doc: str,
    feature_names: Sequence[str] | None = None,
) -> bytes:
    """The serialized ONNX model of `model`: input X [N, n_x] of `dtype`, optional
    input threshold (scalar, `dtype`), outputs probability [N] and label [N]."""
    P, st = model.params, model.standardization
    element = ELEMENT[dtype]
    work = P.theta.dtype  # the arithmetic's type: the model's, as /predict computes
    inner = ELEMENT[str(work)]
    n_x = model.n_features
    init: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(key: str, value: np.ndarray, what: str) -> str:
        tensor = numpy_helper.from_array(value, key)
        tensor.doc_string = what
        init.append(tensor)
        return key

    def node(op: str, inputs: list[str], output: str, what: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, doc_string=what, **attrs))
        return output

    x = node("Cast", ["X"], "x", f"the features, in the model's {work}", to=inner)
    if st is not None:
        mean = const("mean", st.mean.T.astype(work), "the training features' mean (1, n_x)")
        scale = const("scale", st.scale.T.astype(work), "their scale (1, n_x)")
        x = node("Sub", [x, mean], "centered", "x - mean")
        x = node("Div", [x, scale], "standardized", "u = (x - mean) / scale")
    bound = clip_bound(model)
    low = const("low", np.array(-bound, work), "-L: below it nothing of the pass can overflow")
    high = const("high", np.array(bound, work), "L")
    u = node("Clip", [x, low, high], "u", "u clipped to ±L (the module's docstring)")
    W1 = const("W1", np.ascontiguousarray(P.W1), "W1 (n_h, n_x), the hidden layer's weights")
    b1 = const("b1", P.b1.ravel(), "b1 (n_h,), its biases")
    W2 = const("W2", np.ascontiguousarray(P.W2), "W2 (1, n_h), the output unit's weights")
    b2 = const("b2", P.b2.ravel(), "b2 (1,), its bias")
    Z1 = node("Gemm", [u, W1, b1], "Z1", "Z1 = W1·u + b1 (hidden pre-activation)", transB=1)
    activation = "Relu" if model.activation == "relu" else "Tanh"
    A1 = node(activation, [Z1], "A1", f"A1 = {model.activation}(Z1)")
    Z2 = node("Gemm", [A1, W2, b2], "Z2", "Z2 = W2·A1 + b2 (the output's logit)", transB=1)
    A2 = node("Sigmoid", [Z2], "A2", "ŷ = σ(Z2), the positive class's probability")
    axis = const("axis", np.array([1], np.int64), "the column axis of [N, 1]")
    y64 = node("Squeeze", [A2, axis], "yhat", "ŷ as [N]")
    node("Cast", [y64], "probability", f"ŷ in the input's type ({dtype})", to=element)
    const("threshold", np.array(DEFAULT_THRESHOLD, dtype=dtype), "the default threshold")
    t = node("Cast", ["threshold"], "threshold_work", f"the threshold in {work}", to=inner)
    positive_mask = node("GreaterOrEqual", [y64, t], "is_positive", "ŷ ≥ threshold")
    label_type, negative, positive = _label_tensor(model.classes)
    if label_type == TensorProto.BOOL:  # onnxruntime has no boolean Where: the mask itself
        op = "Identity" if bool(positive[0]) else "Not"
        node(op, [positive_mask], "label", "the class each row predicts (a boolean)")
    else:
        neg = const("negative", negative, "the dataset's negative class")
        pos = const("positive", positive, "the dataset's positive class")
        node("Where", [positive_mask, pos, neg], "label", "the class each row predicts")

    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("X", element, ["N", n_x], "rows of raw features"),
            helper.make_tensor_value_info("threshold", element, [], "ŷ ≥ it is positive"),
        ],
        [
            helper.make_tensor_value_info("probability", element, ["N"], "ŷ for each row"),
            helper.make_tensor_value_info("label", label_type, ["N"], "the class for each row"),
        ],
        init,
        doc_string=doc,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="twolayer",
        producer_version=package.__version__,
        doc_string=doc,
        ir_version=IR_VERSION,
    )
    meta = {
        "classes": json.dumps(list(model.classes)),
        "activation": model.activation,
        "feature_names": json.dumps(list(feature_names or [])),
        "standardized": json.dumps(st is not None),
    }
    helper.set_model_props(onnx_model, meta)
    onnx.checker.check_model(onnx_model, full_check=True)
    data: bytes = onnx_model.SerializeToString()
    return data


def run_onnx(*, db: Database, cache: ModelCache, owner: str, run_id: str, dtype: Dtype) -> bytes:
    """The run's model as ONNX, its dataset's feature names in the metadata."""
    model = get_model(db=db, cache=cache, owner=owner, run_id=run_id)
    with db.read() as session:
        names = session.scalar(
            select(Dataset.feature_names)
            .join(Run, Run.dataset_id == Dataset.id)
            .where(Run.id == run_id, Run.owner == owner)
        )
    doc = f"twolayer run {run_id}: a two-layer network for binary classification"
    return to_onnx(model, dtype=dtype, name=f"run_{run_id}", doc=doc, feature_names=names)


def version_onnx(
    *, db: Database, cache: ModelCache, owner: str, name: str, version: int, dtype: Dtype
) -> bytes:
    """A registered version's model as ONNX, with the version's feature names."""
    row = resolve_version(db=db, owner=owner, ref=f"{name}@{version}")
    model = get_model(db=db, cache=cache, owner=owner, run_id=row.run_id)
    doc = f"twolayer model {name}, version {row.version} (run {row.run_id})"
    return to_onnx(
        model, dtype=dtype, name=f"{name}_v{row.version}", doc=doc, feature_names=row.feature_names
    )
