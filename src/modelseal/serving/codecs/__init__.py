"""Request bodies to named numpy arrays and back, transport-free (bytes in, numpy out), so
any front end (HTTP today) reuses them, as MLServer's codecs are reused by its protocols.

``oip`` speaks the Open Inference Protocol v2 (JSON, and with ``binary`` its binary tensor
data extension); ``predict`` the simple ``/predict`` API; ``mlflow`` MLflow's scoring-server
``/invocations``; ``tabular`` what all three take for a tabular model (records, MLflow's
DataFrame formats, one OIP input per column); ``values`` reads JSON values into numpy and
holds the checks they share (shape, batch size, NaN policy, integer range).

JSON has no NaN: in a floating-point input, ``null`` and the ``NaN``/``Infinity`` literals
that Python's ``json`` writes are read as NaN/Inf and the NaN policy decides about them;
non-finite output values are written as ``null``. ``BYTES`` inputs reach a model whose
signature says ``object`` as sent (``str`` from JSON, ``bytes`` from binary), one that says
``str``/``bytes`` as that type, never cut to the signature's fixed width. Booleans are not
numbers: ``[1, true]`` for a numeric input is refused, not read as ``[1, 1]``.
"""

from modelseal.serving.codecs.mlflow import decode_invocations_request, encode_invocations_response
from modelseal.serving.codecs.oip import InferRequest, decode_infer_request, encode_infer_response
from modelseal.serving.codecs.predict import decode_predict_request, encode_predict_response
from modelseal.serving.codecs.values import batch_rows
from modelseal.serving.config import NanPolicy

__all__ = [
    "InferRequest",
    "NanPolicy",
    "batch_rows",
    "decode_infer_request",
    "decode_invocations_request",
    "decode_predict_request",
    "encode_infer_response",
    "encode_invocations_response",
    "encode_predict_response",
]
