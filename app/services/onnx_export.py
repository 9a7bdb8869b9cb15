"""A fitted model as one ONNX graph: standardization, both layers, σ and the labels.

    inputs   X (N, n_x) float|double (rows are instances, as /predict takes them)
             threshold () optional, of X's type; default 0.5 (an initializer of that name)
    outputs  probability (N,) of X's type: ŷ = P(classes[1])
             label (N,): classes[1] where ŷ ≥ threshold, else classes[0]

The classes keep their JSON types: all int → int64 (strings if one is past
int64), all bool → bool, all float → double, all str → string; mixed → strings
(str as is, the others in JSON).

The graph computes in float64 whatever X's type (a float32 X is cast up
exactly; a float32 model's weights are stored widened, exactly): measured
against /predict on the same (float32-rounded) values, a float64 model's ŷ
is within ~4e-16 in a float64 graph and within the last rounding (~3e-8) in
a float32 one; a float32 model's within ~4e-7, the rounding of /predict's own
float32 pass (a float32 graph would add its own rounding of the weights and
sums, and its b/s would underflow at the scales below). ŷ is rounded to the
model's precision, as /predict's is, before it is compared with the
threshold (cast to that precision too) and cast to X's type; it is exactly 1
where /predict's is (Z2 ≥ the first z whose σ, the engine's, is 1 in that
precision, found at export) and nowhere else, so labels agree at threshold
1.0 too.

Extreme inputs: every row takes app/nn/model.py's scaled pass, with its
s = 2^k: k from the exponents of x (Log and Floor, then two Pow checks, give
frexp's exactly), of the mean and scale and of the weights' bound e_W, so
that no sum overflows; k = 0 (s = 1, exact) for every ordinary row. s is
applied as two factors 2^⌊k/2⌋·2^⌈k/2⌉, each finite while k ≤ 2046, which
holds whenever e_W ≤ 963 (e_W ≤ 2038 without standardization): then the
graph matches /predict, and ŷ is finite in [0, 1], for every finite X (|x| up
to 1.8e308 in float64, 3.4e38 in float32). Past that (weights near 1e290,
never trained) k is clipped at 2046, Z1 may overflow and ŷ may be NaN; so it
is for a NaN in X, which /predict refuses.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy import select

import app
from app.core.errors import NotFound
from app.db.models import Dataset, Run
from app.db.session import Database
from app.nn import Model
from app.nn.model import DEFAULT_THRESHOLD
from app.nn.network import sigmoid
from app.nn.preprocessing import Label
from app.services.model_cache import ModelCache
from app.services.registry import resolve_version
from app.services.runs import get_model

# opset 21 / IR 10 (onnx 1.16, May 2024): onnx >= 1.17 checks it and onnxruntime
# >= 1.20 (both the pyproject's lowest) loads it, as do the current onnx 1.23 and
# onnxruntime 1.32; every operator used here is older (the newest, ReduceMax's
# axes-as-input form, is opset 18). IR >= 4 lets an initializer be an input's default.
OPSET = 21
IR_VERSION = 10
FORMAT = "twolayer.onnx/1"
OnnxDtype = Literal["float32", "float64"]
DTYPES: tuple[str, ...] = get_args(OnnxDtype)
_ELEMENT = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
_MAX_K = 2046  # 2^⌊k/2⌋ and 2^⌈k/2⌉ stay finite
_ROOM = int(np.finfo(np.float64).maxexp) - 8  # as Model._scale_exponents, in float64


class _Graph:
    """Nodes and initializers as they are added, each with a name and what it is."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def const(self, name: str, value: Any, doc: str, dtype: Any = np.float64) -> str:
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        tensor.doc_string = doc
        self.initializers.append(tensor)
        return name

    def tensor(self, tensor: TensorProto, doc: str) -> str:
        tensor.doc_string = doc
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op: str, inputs: Sequence[str], output: str, doc: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], output, doc, **attrs))
        return output


def to_onnx(
    model: Model,
    *,
    dtype: OnnxDtype = "float64",
    name: str,
    doc: str,
    feature_names: Sequence[str] | None = None,
) -> bytes:
    """The model as a serialized ONNX ModelProto (the module's docstring)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    P, st, n_x = model.params, model.standardization, model.n_features
    names = list(feature_names) if feature_names is not None else None
    if names is not None and len(names) != n_x:
        raise ValueError(f"{len(names)} feature names for a model of {n_x} features")
    g = _Graph()
    D = TensorProto.DOUBLE
    two = g.const("two", 2.0, "2, the base of the scale s = 2^k")
    for const, value in (("zero", 0.0), ("half", 0.5), ("one", 1.0)):
        g.const(const, value, f"{value} (float64)")
    x = "X"
    if dtype == "float32":
        x = g.op("Cast", [x], "X64", "X in float64 (exact): the graph computes in float64", to=D)
    k = _scale_exponent(g, model, x, two)
    half_k = g.op("Floor", [g.op("Mul", [k, "half"], "k_half", "k/2")], "k1", "k1 = ⌊k/2⌋")
    k2 = g.op("Sub", [k, half_k], "k2", "k2 = k - k1")
    up = [g.op("Pow", [two, e], f"up{i}", f"2^k{i}") for i, e in ((1, half_k), (2, k2))]
    down = [
        g.op("Pow", [two, g.op("Neg", [e], f"minus_k{i}", f"-k{i}")], f"down{i}", f"2^-k{i}")
        for i, e in ((1, half_k), (2, k2))
    ]

    def times(value: str, factors: list[str], out: str, doc: str) -> str:
        first = g.op("Mul", [value, factors[0]], f"{out}_step", f"{doc}, first factor")
        return g.op("Mul", [first, factors[1]], out, doc)

    U = times(x, down, "X_scaled", "X' = X / s")
    if st is not None:
        mean = g.const("mean", st.mean.T, "the training split's feature means (1, n_x)")
        scale = g.const("scale", st.scale.T, "the training split's feature scales (1, n_x)")
        mean_s = times(mean, down, "mean_scaled", "mean / s")
        centred = g.op("Sub", [U, mean_s], "X_centred", "X' - mean/s = (X - mean) / s")
        U = g.op("Div", [centred, scale], "X_standardized", "(X - mean) / scale / s")
    W1 = g.const("W1", P.W1, "W1 (n_h, n_x), the hidden layer's weights (standardized space)")
    b1 = g.const("b1", P.b1.T, "b1 (1, n_h), the hidden layer's biases")
    W2 = g.const("W2", P.W2, "W2 (1, n_h), the output layer's weights")
    b2 = g.const("b2", P.b2.reshape(1), "b2 (1,), the output layer's bias")
    b1s = times(b1, down, "b1_scaled", "b1 / s (N, n_h)")
    Z1 = g.op("Gemm", [U, W1, b1s], "Z1_scaled", "Z1' = W1·x' + b1/s = Z1 / s", transB=1)
    if model.activation == "relu":
        A1 = g.op("Relu", [Z1], "A1_scaled", "A1' = relu(Z1') = A1 / s (relu is homogeneous)")
        WA = g.op("Gemm", [A1, W2], "W2A1_scaled", "W2·A1' (N, 1)", transB=1)
        Z2 = g.op("Add", [times(WA, up, "W2A1", "s·W2·A1'"), b2], "Z2", "Z2 = W2·A1 + b2")
    else:
        A1 = g.op("Tanh", [times(Z1, up, "Z1", "Z1 = s·Z1'")], "A1", "A1 = tanh(Z1)")
        Z2 = g.op("Gemm", [A1, W2, b2], "Z2", "Z2 = W2·A1 + b2 (N, 1)", transB=1)
    g.const("axis_1", [1], "axis 1", np.int64)
    z2 = g.op("Squeeze", [Z2, "axis_1"], "z2", "Z2 as (N,)")
    yhat = g.op("Sigmoid", [z2], "sigmoid_z2", "σ(Z2), float64")
    m_dtype = np.dtype(P.theta.dtype)
    m_type = TensorProto.FLOAT if m_dtype == np.float32 else D
    if m_dtype == np.float32:
        yhat = g.op("Cast", [yhat], "sigmoid_z2_model", "σ(Z2) in float32", to=m_type)
    below = g.const("below_one", np.nextafter(1, 0, dtype=m_dtype), "the largest ŷ < 1", m_dtype)
    g.const("one_model", 1.0, "1, in the model's precision", m_dtype)
    g.const("saturation", _saturation(m_dtype.name), "/predict's ŷ is 1 from this Z2 on")
    saturated = g.op("GreaterOrEqual", [z2, "saturation"], "saturated", "ŷ rounds to 1 here")
    capped = g.op("Min", [yhat, below], "sigmoid_capped", "σ(Z2) below 1 where not saturated")
    yhat = g.op(
        "Where", [saturated, "one_model", capped], "yhat", "ŷ = A2, in the model's precision"
    )
    element = _ELEMENT[dtype]
    g.op("Cast", [yhat], "probability", "ŷ = P(classes[1]) in X's type", to=element)
    t_m = g.op("Cast", ["threshold"], "threshold_model", "the threshold, as ŷ's type", to=m_type)
    positive = g.op("GreaterOrEqual", [yhat, t_m], "is_positive", "ŷ ≥ threshold")
    label_type, negative, positive_class = _class_tensors(model.classes)
    g.tensor(negative, f"classes[0] = {model.classes[0]!r}, the negative class")
    g.tensor(positive_class, f"classes[1] = {model.classes[1]!r}, the positive class")
    if label_type == TensorProto.BOOL:  # onnxruntime has no bool Where: uint8, then cast
        classes = [positive, "positive_class", "negative_class"]
        chosen = g.op("Where", classes, "label_u8", "the class, as 0 or 1")
        g.op("Cast", [chosen], "label", "the class", to=TensorProto.BOOL)
    else:
        g.op("Where", [positive, "positive_class", "negative_class"], "label", "the class")
    g.tensor(
        helper.make_tensor("threshold", element, [], [DEFAULT_THRESHOLD]), "the default threshold"
    )
    features = ", ".join(names) if names is not None else f"{n_x} features"
    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("X", element, ["N", n_x], f"rows of {features}"),
            helper.make_tensor_value_info(
                "threshold", element, [], "ŷ at or above it predicts classes[1]; default 0.5"
            ),
        ],
        [
            helper.make_tensor_value_info("probability", element, ["N"], "ŷ = P(classes[1])"),
            helper.make_tensor_value_info(
                "label", label_type, ["N"], "classes[1] where ŷ ≥ threshold, else classes[0]"
            ),
        ],
        g.initializers,
        doc_string=doc,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="twolayer",
        producer_version=app.__version__,
        doc_string=doc,
    )
    meta = {
        "format": FORMAT,
        "twolayer_version": app.__version__,
        "activation": model.activation,
        "classes": json.dumps(list(model.classes)),
        "feature_names": json.dumps(names),
        "standardized": json.dumps(st is not None),
        "weights_dtype": m_dtype.name,
        "input_dtype": dtype,
    }
    helper.set_model_props(proto, meta)
    data: bytes = proto.SerializeToString()
    return data


model_onnx = to_onnx  # the building block for other sources of a Model (the registry)


def _scale_exponent(g: _Graph, model: Model, x: str, two: str) -> str:
    """k (N, 1) per row of x (N, n_x) float64: Model._scale_exponents in float64."""
    P, st = model.params, model.standardization
    W1_sum = float(np.abs(P.W1).astype(np.float64).sum(axis=1).max())
    W2_sum = float(np.abs(P.W2).astype(np.float64).sum())
    e_W = max(math.frexp(W1_sum)[1] + math.frexp(W2_sum)[1], 0)
    magnitude = g.op("Abs", [x], "x_abs", "|x|")
    is_zero = g.op("Equal", [x, "zero"], "x_is_zero", "x = 0")
    # frexp(0) has exponent 0, as frexp(0.5): 0 is replaced by 0.5
    a = g.op("Where", [is_zero, "half", magnitude], "x_abs_nonzero", "|x|, 0 as 0.5")
    g.const("ln2", math.log(2.0), "ln 2")
    log2 = g.op("Div", [g.op("Log", [a], "x_log", "ln|x|"), "ln2"], "x_log2", "log2|x|")
    floor = g.op("Floor", [log2], "x_log2_floor", "⌊log2|x|⌋")
    e0 = g.op("Add", [floor, "one"], "e0", "⌊log2|x|⌋ + 1: frexp's exponent, ±1 (Log rounds)")
    D = TensorProto.DOUBLE
    power = g.op("Pow", [two, e0], "two_e0", "2^e0")
    short = g.op("GreaterOrEqual", [a, power], "e0_short", "|x| ≥ 2^e0: e0 is one short")
    up = g.op("Cast", [short], "e0_up", "1 where e0 is one short", to=D)
    e1 = g.op("Add", [e0, up], "e1", "e0, corrected upwards")
    e1_below = g.op("Sub", [e1, "one"], "e1_below", "e1 - 1")
    below = g.op("Pow", [two, e1_below], "two_e1_below", "2^(e1 - 1)")
    over = g.op("Less", [a, below], "e1_over", "|x| < 2^(e1 - 1): e1 is one too many")
    down = g.op("Cast", [over], "e1_down", "1 where e1 is one too many", to=D)
    e = g.op("Sub", [e1, down], "e_x", "e_x: frexp's exponent, 2^(e_x - 1) ≤ |x| < 2^e_x")
    if st is None:
        bound = g.const("e_offset", e_W - _ROOM, "e_W - room")
    else:
        e_mean = g.const("e_mean", np.frexp(st.mean.T)[1], "frexp's exponents of the mean")
        e = g.op("Max", [e, e_mean], "e_xm", "max(e_x, e_mean): |x - mean| < 2^(that + 1)")
        offset = 2 - np.frexp(st.scale.T)[1] + e_W - _ROOM
        bound = g.const("e_offset", offset, "2 - e_scale + e_W - room, per feature")
    per_feature = g.op("Add", [e, bound], "k_features", "each feature's bound on k")
    g.const("axes_1", [1], "axis 1", np.int64)
    k_row = g.op("ReduceMax", [per_feature, "axes_1"], "k_row", "the row's bound", keepdims=1)
    g.const("k_max", float(_MAX_K), "the largest k two finite factors make")
    return g.op("Clip", [k_row, "zero", "k_max"], "k", "k (N, 1): s = 2^k, 0 for most rows")


@functools.cache
def _saturation(dtype: str) -> float:
    """The smallest z for which the engine's σ(z), in `dtype`, is exactly 1."""
    lo, hi = np.zeros(1, dtype), np.full(1, 64.0, dtype)
    while True:
        mid = (lo + (hi - lo) / 2).astype(dtype)
        if mid[0] in (lo[0], hi[0]):
            return float(hi[0])
        lo, hi = (mid, hi) if sigmoid(mid)[0] < 1 else (lo, mid)


def _class_tensors(classes: tuple[Label, Label]) -> tuple[int, TensorProto, TensorProto]:
    """The label's element type and the two classes as scalar tensors."""
    kinds = {type(c) for c in classes}
    names = ("negative_class", "positive_class")
    if kinds == {bool}:  # held as uint8 (the graph casts the label)
        neg, pos = (
            helper.make_tensor(n, TensorProto.UINT8, [], [int(c)])
            for n, c in zip(names, classes, strict=True)
        )
        return TensorProto.BOOL, neg, pos
    values: list[Any] = list(classes)
    if kinds == {int} and all(-(2**63) <= int(c) < 2**63 for c in classes):
        element = TensorProto.INT64
    elif kinds == {float}:
        element = TensorProto.DOUBLE
    else:
        element = TensorProto.STRING
        values = [(c if isinstance(c, str) else json.dumps(c)).encode() for c in classes]
    neg, pos = (helper.make_tensor(n, element, [], [v]) for n, v in zip(names, values, strict=True))
    return element, neg, pos


def run_onnx(
    *, db: Database, cache: ModelCache, owner: str, run_id: str, dtype: OnnxDtype
) -> bytes:
    """The owner's run's model as ONNX; its dataset's feature names in the graph.
    Unknown (or another owner's) run → NotFound; no weights yet → RunHasNoModel."""
    model = get_model(db=db, cache=cache, owner=owner, run_id=run_id)
    with db.read() as session:
        row = session.execute(
            select(Run.name, Dataset.name.label("dataset"), Dataset.feature_names)
            .join(Dataset, Dataset.id == Run.dataset_id)
            .where(Run.id == run_id, Run.owner == owner)
        ).one_or_none()
    if row is None:  # deleted since its weights were read
        raise NotFound(f"run {run_id} does not exist")
    named = f" ({row.name})" if row.name else ""
    doc = (
        f"twolayer run {run_id}{named}, trained on dataset {row.dataset!r}: "
        f"{model.n_features} features → {model.hidden_units} {model.activation} units → "
        f"σ; classes {list(model.classes)}, the second positive"
    )
    return model_onnx(
        model, dtype=dtype, name=f"twolayer_run_{run_id}", doc=doc, feature_names=row.feature_names
    )


def version_onnx(
    *, db: Database, cache: ModelCache, owner: str, name: str, version: int, dtype: OnnxDtype
) -> bytes:
    """A registered version's model as ONNX, with the version's feature names."""
    row = resolve_version(db=db, owner=owner, ref=f"{name}@{version}")
    model = get_model(db=db, cache=cache, owner=owner, run_id=row.run_id)
    doc = f"twolayer model {name!r}, version {row.version} (run {row.run_id})"
    return model_onnx(
        model, dtype=dtype, name=f"{name}_v{row.version}", doc=doc, feature_names=row.feature_names
    )
