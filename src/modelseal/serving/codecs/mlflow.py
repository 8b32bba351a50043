"""MLflow's scoring-server protocol (``POST /invocations``), the contract SageMaker containers
and MLflow's clients speak, so they work against a modelseal server unchanged.

A tabular model takes what ``tabular`` reads (``dataframe_split`` with MLflow's ``index``,
``dataframe_records``, ``instances``, ``inputs``); a tensor model takes MLflow's tensor
forms: ``{"instances": [ROW, ...]}`` or ``{"inputs": [ROW, ...]}`` for one input and
``{"inputs": {"<input>": [ROW, ...]}}`` by name. The answer is MLflow's
``{"predictions": ...}``: the rows of a model's only output, or its outputs by name.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelseal.errors import InputError
from modelseal.serving.codecs.predict import decode_predict_document, prediction
from modelseal.serving.codecs.tabular import decode_table_body
from modelseal.serving.codecs.values import ValueRules, load_object
from modelseal.serving.config import NanPolicy
from modelseal.types import NamedArrays, Signature

_TENSOR_USAGE = (
    'this model takes tensors: send {"inputs": [row, ...]} or {"instances": [row, ...]} for '
    'its one input, or {"inputs": {"<input>": [row, ...], ...}}'
)


def decode_invocations_request(
    body: bytes, signature: Signature, *, nan_policy: NanPolicy = "reject"
) -> NamedArrays:
    """The inputs of a ``POST /invocations`` body, checked as ``/predict`` checks them."""
    document = load_object(body)
    if signature.table is not None:
        return decode_table_body(document, signature.table)[0]
    if document.get("params"):
        raise InputError("params: this model takes no parameters; send the inputs alone")
    forms = {key: value for key, value in document.items() if key != "params"}
    if len(forms) != 1 or next(iter(forms)) not in ("instances", "inputs"):
        raise InputError(f"{_TENSOR_USAGE}; got keys: {', '.join(map(repr, document)) or 'none'}")
    ((key, value),) = forms.items()
    as_predict = {"inputs" if isinstance(value, dict) else "instances": value}
    if key == "instances" and isinstance(value, dict):
        raise InputError(f"instances: expected a list of rows; {_TENSOR_USAGE}")
    rules = ValueRules.for_body(body, nan_policy)
    return decode_predict_document(as_predict, signature, rules)[0]


def encode_invocations_response(outputs: NamedArrays) -> bytes:
    """``{"predictions": ROWS}`` for one output, ``{"predictions": {output: ROWS}}`` else."""
    by_name = {name: prediction(array, name, single=False) for name, array in outputs.items()}
    predictions: Any = next(iter(by_name.values())) if len(by_name) == 1 else by_name
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
