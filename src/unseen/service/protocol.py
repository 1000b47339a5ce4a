"""The Open Inference Protocol v2 request and response (KServe / MLServer / Triton), checked by hand.

Request (``POST /v2/models/{name}[/versions/{v}]/infer``)::

    {"id": "optional-request-id",
     "parameters": {"explain": 3},                        # optional: 3 nearest training exemplars per row
     "inputs": [{"name": "features", "shape": [N, D], "datatype": "FP32", "data": [...]}],
     "outputs": [{"name": "score"}, {"name": "verdict"}]} # optional: a subset of the outputs

``data`` is row-major, flat (``N * D`` numbers) or nested (``N`` lists of ``D``). A text model also takes
``{"name": "text", "shape": [N], "datatype": "BYTES", "data": ["a cup of espresso", ...]}``.

Every problem is a :class:`RequestError` with the HTTP status and a message that says what was expected;
JSON has no NaN or infinity, and a number outside the FP32 range is refused rather than scored as infinite.

The pydantic models below document the wire format (FastAPI shows them in ``/docs``); parsing does not go
through them, so that a 1 MB tensor is read once by orjson and converted once by NumPy.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, Field

__all__ = ["InferRequest", "InferResponse", "ParsedRequest", "RequestError", "parse_infer", "request_id_of"]

FLOAT_TYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}
TENSOR_KEYS = {"name", "shape", "datatype", "data", "parameters"}
PARAMETER_KEYS = {"explain"}
ID_RULE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
EXAMPLE = '{"inputs": [{"name": "features", "shape": [N, D], "datatype": "FP32", "data": [...N*D numbers...]}]}'


class RequestError(Exception):
    """A request the service refuses: ``status`` (4xx) and a message naming what was expected."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# ------------------------------------------------------------------------------------------ wire format (docs)


class TensorIn(BaseModel):
    name: str = Field(examples=["features"])
    shape: list[int] = Field(examples=[[1, 64]])
    datatype: str = Field(examples=["FP32"], description="FP32 (FP16, FP64, INT* also read), or BYTES for text")
    data: list[Any] = Field(description="row-major values, flat or nested")
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = Field(None, description="request id; a retry with the same id is answered from the store")
    parameters: dict[str, Any] | None = Field(None, examples=[{"explain": 3}])
    inputs: list[TensorIn]
    outputs: list[dict[str, Any]] | None = None


class TensorOut(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any] = Field(description="durable, event_id, replayed, explanations")
    outputs: list[TensorOut]


# ------------------------------------------------------------------------------------------ parsing


@dataclass
class ParsedRequest:
    """A checked inference request."""

    request_id: str
    X: np.ndarray | None = None  # (n, n_features)
    texts: list[str] | None = None
    explain: int = 0
    outputs: list[str] | None = None
    digest: str = ""
    datatype: str = "FP32"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        if self.texts is not None:
            return len(self.texts)
        assert self.X is not None, "a request holds either texts or X"
        return int(self.X.shape[0])


def request_id_of(body_id: Any, header_id: str | None) -> str:
    """The request id: the body's ``id`` or the ``X-Request-Id`` header (they must agree), else a new UUID."""
    if body_id is not None and not isinstance(body_id, str):
        raise RequestError(400, f"'id' must be a string, got {type(body_id).__name__}.")
    for value in (body_id, header_id):
        if value is not None and not ID_RULE.match(value):
            raise RequestError(
                400, f"Request id {value[:140]!r} is not valid: use 1 to 128 letters, digits, '.', '_', ':' or '-'."
            )
    if body_id is not None and header_id is not None and body_id != header_id:
        raise RequestError(
            400, f"The body's id {body_id!r} and the X-Request-Id header {header_id!r} differ; send one."
        )
    return body_id or header_id or uuid.uuid4().hex


def _loads(body: bytes) -> Any:
    if not body:
        raise RequestError(400, f"The request body is empty; expected JSON like {EXAMPLE}.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            400,
            f"The request body is not valid JSON ({exc}); NaN and infinity are not JSON numbers. Expected {EXAMPLE}.",
        ) from None


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise RequestError(400, f"{where}.shape must be a list of integers such as [N, D], got {_short(value)}.")
    if any(v < 0 for v in value):
        raise RequestError(400, f"{where}.shape must not hold negative sizes, got {value}.")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _numbers(data: list, shape: list[int], n_features: int, datatype: str, where: str) -> np.ndarray:
    n = shape[0]
    if data and type(data[0]) is not list:  # flat, the common case: one pass for the types, one to convert
        kinds = set(map(type, data))
        if kinds <= {float, int}:
            if len(data) != n * shape[1]:
                raise RequestError(
                    400, f"{where}.data holds {len(data)} values but shape {shape} needs {n * shape[1]}."
                )
            if datatype in INT_TYPES and float in kinds:
                raise RequestError(400, f"{where}.data holds fractional numbers but datatype is {datatype}; send FP32.")
            arr = np.fromiter(data, dtype=np.float64, count=len(data))
            return _finite(arr, n, shape, datatype, where)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise RequestError(
            400,
            f"{where}.data is ragged: rows of different lengths; send {n} rows of {n_features} "
            "numbers (or one flat list).",
        ) from None
    if arr.dtype.kind not in "iuf":
        what = {"b": "true/false", "U": "strings", "S": "strings", "O": "mixed or nested values"}.get(
            arr.dtype.kind, str(arr.dtype)
        )
        raise RequestError(400, f"{where}.data must hold numbers only for datatype {datatype}, got {what}.")
    if datatype in INT_TYPES and arr.dtype.kind == "f":
        raise RequestError(400, f"{where}.data holds fractional numbers but datatype is {datatype}; send FP32.")
    if arr.ndim in (1, 2):
        # np.asarray turns [1.5, true] into [1.5, 1.0]: a bool hidden among numbers is refused too
        rows = data if arr.ndim == 2 else (data,)
        if any(bool in set(map(type, row)) for row in rows):
            raise RequestError(
                400, f"{where}.data must hold numbers only for datatype {datatype}, got true/false among them."
            )
    if arr.size != n * shape[1]:
        raise RequestError(400, f"{where}.data holds {arr.size} values but shape {shape} needs {n * shape[1]}.")
    if arr.ndim == 2 and list(arr.shape) != shape or arr.ndim not in (1, 2):
        raise RequestError(
            400,
            f"{where}.data is nested as {list(arr.shape)} but shape says {shape}; send it flat "
            "(row-major) or as N rows of D numbers.",
        )
    return _finite(arr, n, shape, datatype, where)


def _finite(arr: np.ndarray, n: int, shape: list[int], datatype: str, where: str) -> np.ndarray:
    """The rows in the declared precision, refusing values outside its range."""
    dtype = FLOAT_TYPES.get(datatype, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        X = arr.reshape(n, shape[1]).astype(dtype, copy=False)
    if not np.isfinite(X).all():
        r, c = map(int, np.argwhere(~np.isfinite(X))[0])
        raise RequestError(
            400,
            f"{where}.data[{r}][{c}] = {arr.reshape(n, -1)[r, c]!r} is outside the {datatype} range; "
            f"send finite values (or datatype FP64).",
        )
    return X.astype(np.float32) if X.dtype == np.float16 else X


def _texts(data: list, shape: list[int], max_chars: int, where: str) -> list[str]:
    if len(shape) not in (1, 2) or len(shape) == 2 and shape[1] != 1:
        raise RequestError(400, f"{where}.shape must be [N] (or [N, 1]) for a BYTES tensor of N texts, got {shape}.")
    flat = data
    if flat and all(isinstance(x, list) for x in flat):
        flat = [x[0] if len(x) == 1 else x for x in flat]
    if len(flat) != shape[0]:
        raise RequestError(400, f"{where}.data holds {len(flat)} texts but shape says {shape[0]}.")
    for i, t in enumerate(flat):
        if not isinstance(t, str):
            raise RequestError(400, f"{where}.data[{i}] must be a string (BYTES tensors carry text), got {_short(t)}.")
        if len(t) > max_chars:
            raise RequestError(413, f"{where}.data[{i}] has {len(t)} characters; the limit is {max_chars}.")
    return list(flat)


def parse_infer(
    body: bytes,
    *,
    n_features: int,
    takes_text: bool,
    output_names: list[str],
    max_rows: int,
    max_text_chars: int,
    max_explain: int,
    header_id: str | None,
    model_key: str,
) -> ParsedRequest:
    """Read and check an inference request for a model with ``n_features`` inputs (see the module docstring)."""
    req = _loads(body)
    if not isinstance(req, dict):
        raise RequestError(400, f"Expected a JSON object like {EXAMPLE}, got a JSON {type(req).__name__}.")
    unknown = set(req) - REQUEST_KEYS
    if unknown:
        raise RequestError(
            400, f"Unknown field(s) {sorted(unknown)} in the request; allowed are {sorted(REQUEST_KEYS)}."
        )
    rid = request_id_of(req.get("id"), header_id)
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError(400, f"'parameters' must be an object such as {{\"explain\": 3}}, got {_short(params)}.")
    bad = set(params) - PARAMETER_KEYS
    if bad:
        raise RequestError(400, f"Unknown parameter(s) {sorted(bad)}; this server knows {sorted(PARAMETER_KEYS)}.")
    explain = params.get("explain", 0)
    if explain is True:
        explain = 5
    if explain is False or explain is None:
        explain = 0
    if type(explain) is not int or not 0 <= explain <= max_explain:
        raise RequestError(
            400,
            f"parameters.explain must be an integer from 0 to {max_explain} (exemplars per row), "
            f"got {_short(explain)}.",
        )
    outputs = req.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise RequestError(400, '\'outputs\' must be a list of objects with a name, e.g. [{"name": "score"}].')
        wanted = [o["name"] for o in outputs]
        missing = [w for w in wanted if w not in output_names]
        if missing:
            raise RequestError(400, f"Unknown output(s) {missing}; this model gives {output_names}.")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        got = "none" if inputs is None else (f"{len(inputs)} tensors" if isinstance(inputs, list) else _short(inputs))
        raise RequestError(400, f"'inputs' must be a list with exactly one tensor, got {got}. Expected {EXAMPLE}.")
    tensor = inputs[0]
    where = "inputs[0]"
    if not isinstance(tensor, dict):
        raise RequestError(400, f"{where} must be an object with name, shape, datatype and data, got {_short(tensor)}.")
    extra = set(tensor) - TENSOR_KEYS
    lacking = {"name", "shape", "datatype", "data"} - set(tensor)
    if lacking or extra:
        raise RequestError(
            400,
            f"{where} needs name, shape, datatype and data"
            f"{'; missing ' + str(sorted(lacking)) if lacking else ''}"
            f"{'; unknown ' + str(sorted(extra)) if extra else ''}.",
        )
    if not isinstance(tensor["name"], str):
        raise RequestError(400, f"{where}.name must be a string.")
    datatype = tensor["datatype"]
    shape = _shape(tensor["shape"], where)
    data = tensor["data"]
    if not isinstance(data, list):
        raise RequestError(400, f"{where}.data must be a list, got {_short(data)}.")
    if not isinstance(datatype, str):
        raise RequestError(400, f'{where}.datatype must be a string such as "FP32", got {_short(datatype)}.')
    if not shape or shape[0] == 0:
        raise RequestError(400, f"{where}.shape {shape} holds no rows; send at least one.")
    if shape[0] > max_rows:
        raise RequestError(413, f"{where} has {shape[0]} rows; the limit is {max_rows} per request: split the batch.")
    out = ParsedRequest(request_id=rid, explain=explain, outputs=wanted, datatype=datatype)
    h = hashlib.sha256(f"{model_key}|{datatype}|{shape}|".encode())
    if datatype == "BYTES":
        if not takes_text:
            raise RequestError(
                400,
                f"This model takes features, not text: send datatype FP32 with shape [N, {n_features}] "
                "(a model saved with an encoder in config.json takes BYTES).",
            )
        out.texts = _texts(data, shape, max_text_chars, where)
        for t in out.texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    elif datatype in FLOAT_TYPES or datatype in INT_TYPES:
        if len(shape) != 2:
            raise RequestError(400, f"{where}.shape must be [N, {n_features}] (rows, features), got {shape}.")
        if shape[1] != n_features:
            raise RequestError(
                400,
                f"This model takes {n_features} features per row (the width it was fitted on), got "
                f"shape {shape}. Send features from the same encoder and layer the model was fitted on.",
            )
        out.X = _numbers(data, shape, n_features, datatype, where)
        h.update(out.X.tobytes())
    else:
        kinds = "FP32 (or FP16, FP64, INT*)" + (" or BYTES (text)" if takes_text else "")
        raise RequestError(400, f"{where}.datatype {datatype!r} is not supported; send {kinds}.")
    out.digest = h.hexdigest()
    return out


def output_tensors(values: dict[str, tuple[str, list]], wanted: list[str] | None) -> list[dict[str, Any]]:
    """OIP output tensors from ``name -> (datatype, values)``, in order, restricted to ``wanted``."""
    names = wanted if wanted is not None else list(values)
    return [{"name": n, "datatype": values[n][0], "shape": [len(values[n][1])], "data": values[n][1]} for n in names]
