"""ONNX models: :class:`OnnxModel` runs an ONNX file (or an ``onnxruntime.InferenceSession``) on NumPy inputs.

Features and logits are graph outputs named by the caller. An intermediate value that is not a graph
output (e.g. the input of the final ``Gemm``) can be named too: the graph is then extended with it as an
extra output (needs the ``onnx`` package and a file or bytes, not a session). The head ``(W, b)`` is read
from the graph when the logits come from ``Gemm(features, W, b)`` or ``MatMul(features, W) + b`` with
constant weights (needs ``onnx``), or is given as ``head=``.

onnxruntime is imported when an :class:`OnnxModel` is created, not when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._validation import check_param
from ..exceptions import InputError, MissingDependencyError
from ._base import ModelAdapter, ModelOutputs, split_labels

__all__ = ["OnnxModel"]

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_POOLING = (None, "mean", "first")


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            'OnnxModel needs onnxruntime. Install it with: pip install "unseen[onnx]"'
        ) from exc
    return onnxruntime


def _import_onnx(why: str):
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"OnnxModel needs the onnx package {why}. Install it with: pip install onnx"
        ) from exc
    return onnx


def _to_numpy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _iter_batches(inputs: Any, batch_size: int) -> tuple[Iterator[tuple[Any, Any]], int | None]:
    """``(x, y_or_None)`` batches: arrays and dicts are split by rows, lists are samples, iterables are batches."""
    if isinstance(inputs, (str, bytes)):
        raise InputError("OnnxModel got a string as inputs; pass an array, a dict of arrays or an iterable of batches.")
    if isinstance(inputs, np.ndarray) or (hasattr(inputs, "shape") and hasattr(inputs, "detach")):
        arr = _to_numpy(inputs)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise InputError(f"OnnxModel got an empty input of shape {arr.shape}; pass at least one sample.")
        n = arr.shape[0]
        return ((arr[i : i + batch_size], None) for i in range(0, n, batch_size)), -(-n // batch_size)
    if isinstance(inputs, Mapping):
        data = {k: _to_numpy(v) for k, v in inputs.items()}
        lengths = {k: v.shape[0] for k, v in data.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise InputError(f"OnnxModel got a dict of inputs with differing lengths {lengths}.")
        n = next(iter(lengths.values()))
        gen = ({k: v[i : i + batch_size] for k, v in data.items()} for i in range(0, n, batch_size))
        return ((b, None) for b in gen), -(-n // batch_size)
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise InputError("OnnxModel got an empty list of inputs.")
        n = len(inputs)

        def samples():
            for i in range(0, n, batch_size):
                chunk = inputs[i : i + batch_size]
                if isinstance(chunk[0], (tuple, list)):
                    yield np.stack([_to_numpy(s[0]) for s in chunk]), np.asarray([_to_numpy(s[1]) for s in chunk])
                else:
                    yield np.stack([_to_numpy(s) for s in chunk]), None

        return samples(), -(-n // batch_size)
    if not hasattr(inputs, "__iter__"):
        raise InputError(f"OnnxModel cannot read inputs of type {type(inputs).__name__}.")
    try:
        total = len(inputs)
    except TypeError:
        total = None

    def batches():
        for batch in inputs:
            if isinstance(batch, (tuple, list)):
                yield _to_numpy(batch[0]), (_to_numpy(batch[1]) if len(batch) > 1 else None)
            else:
                yield _to_numpy(batch), None

    return batches(), total


class OnnxModel(ModelAdapter):
    """Features, logits and head ``(W, b)`` from an ONNX model run with onnxruntime.

    Parameters
    ----------
    path_or_session : str, Path, bytes or onnxruntime.InferenceSession
        The model file (or its serialized bytes), or a ready session.
    feature_output : str, optional
        Name of the value holding the features: a graph output, or (with ``onnx`` installed and a file
        or bytes) any intermediate value, which is then added as an output.
    logits_output : str, optional
        Name of the logits output. When neither name is given and the graph has one output, it is the
        logits; when only ``feature_output`` is given, there are no logits (an encoder).
    input_names : sequence of str, optional
        Graph inputs fed, in order, when ``extract`` gets a single array; default: the graph's inputs.
    pooling : {None, "mean", "first"}, default None
        How a feature output of shape (batch, tokens, dim) becomes one vector per input: the mean over
        tokens (weighted by the ``attention_mask`` input when there is one, as sentence-transformers does)
        or the first token. None: the feature output must already be 2-D.
    head : tuple (W, b), optional
        The final linear layer, when it cannot be read from the graph.
    batch_size : int, default 256
        Rows per ``session.run``.
    providers : list of str, optional
        onnxruntime execution providers; default CUDA when available, else CPU.

    Examples
    --------
    >>> m = OnnxModel("mlp.onnx", feature_output="features", logits_output="logits")  # doctest: +SKIP
    >>> out = m.extract(X_test)  # doctest: +SKIP
    >>> det = unseen.get_detector("vim", dim=16).fit(m.features(X_train), head=m.head)  # doctest: +SKIP
    """

    def __init__(
        self,
        path_or_session: Any,
        *,
        feature_output: str | None = None,
        logits_output: str | None = None,
        input_names: list[str] | tuple[str, ...] | None = None,
        pooling: str | None = None,
        head: tuple[Any, Any] | None = None,
        batch_size: int = 256,
        providers: list[str] | None = None,
    ):
        ort = _import_ort()
        check_param(batch_size, "batch_size", owner="OnnxModel", kind=int, low=1)
        check_param(pooling, "pooling", owner="OnnxModel", choices=_POOLING)
        self.batch_size, self.pooling = batch_size, pooling
        self._model_bytes: bytes | None = None
        if isinstance(path_or_session, ort.InferenceSession):
            session = path_or_session
        elif isinstance(path_or_session, (bytes, bytearray)):
            self._model_bytes = bytes(path_or_session)
            session = None
        elif isinstance(path_or_session, (str, os.PathLike)):
            path = Path(path_or_session)
            if not path.is_file():
                raise InputError(f"OnnxModel: no ONNX file at {str(path)!r}.")
            self._model_bytes = path.read_bytes()
            session = None
        else:
            raise InputError(
                f"OnnxModel expected a path, model bytes or an onnxruntime.InferenceSession, got {type(path_or_session).__name__}."
            )
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.providers = providers
        if session is None:
            assert self._model_bytes is not None  # set above whenever no session was given
            session = self._session_from_bytes(self._model_bytes)
        outputs = [o.name for o in session.get_outputs()]
        if feature_output is None and logits_output is None:
            if len(outputs) != 1:
                raise InputError(
                    f"OnnxModel: the graph has outputs {outputs}; name feature_output= and/or logits_output=."
                )
            logits_output = outputs[0]
        if logits_output is not None and logits_output not in outputs:
            raise InputError(f"OnnxModel: logits_output {logits_output!r} is not a graph output; outputs: {outputs}.")
        if feature_output is not None and feature_output not in outputs:
            session = self._expose(feature_output, outputs)
        self.session = session
        self.feature_output, self.logits_output = feature_output, logits_output
        graph_inputs = session.get_inputs()
        self._input_types = {i.name: _DTYPES.get(i.type) for i in graph_inputs}
        if input_names is None:
            input_names = [i.name for i in graph_inputs]
        unknown = [n for n in input_names if n not in self._input_types]
        if unknown:
            raise InputError(
                f"OnnxModel: input names {unknown} are not graph inputs; inputs: {list(self._input_types)}."
            )
        self.input_names = list(input_names)
        self._given_head = head
        self._graph_head: tuple[np.ndarray, np.ndarray] | None | bool = False  # False: not looked up yet

    def _session_from_bytes(self, data: bytes):
        ort = _import_ort()
        try:
            return ort.InferenceSession(data, providers=self.providers)
        except Exception as exc:
            raise InputError(f"OnnxModel: onnxruntime could not load the model: {exc}") from None

    def _expose(self, name: str, outputs: list[str]):
        """A session whose graph also outputs the intermediate value ``name``."""
        if self._model_bytes is None:
            raise InputError(
                f"OnnxModel: feature_output {name!r} is not a graph output ({outputs}); to use an intermediate value, "
                "pass the model file or bytes instead of a session."
            )
        onnx = _import_onnx(f"to read the intermediate value {name!r}")
        proto = onnx.load_from_string(self._model_bytes)
        values = [o for node in proto.graph.node for o in node.output]
        if name not in values:
            shown = ", ".join(map(repr, values[-30:]))
            raise InputError(
                f"OnnxModel: no value named {name!r} in the graph; graph outputs: {outputs}; last node outputs: {shown}."
            )
        proto.graph.output.append(onnx.ValueInfoProto(name=name))
        return self._session_from_bytes(proto.SerializeToString())

    # ------------------------------------------------------------------------------------ head

    def _head(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._given_head is not None:
            W, b = self._given_head
            W = np.asarray(W, dtype=np.float32)
            b = np.zeros(W.shape[0], np.float32) if b is None else np.asarray(b, dtype=np.float32)
            return W, b
        if self._graph_head is False:
            self._graph_head = self._read_head()
        return self._graph_head  # type: ignore[return-value]

    def _read_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._model_bytes is None or self.feature_output is None or self.logits_output is None:
            return None
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            return None
        graph = onnx.load_from_string(self._model_bytes).graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:  # some exporters keep weights in Constant nodes
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        inits.setdefault(node.output[0], numpy_helper.to_array(a.t))
        producer = {o: node for node in graph.node for o in node.output}
        node = producer.get(self.logits_output)
        while node is not None and node.op_type == "Identity":
            node = producer.get(node.input[0])
        if node is None:
            return None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm" and node.input[0] == self.feature_output and node.input[1] in inits:
            if attrs.get("transA", 0):
                return None
            W = inits[node.input[1]]
            W = W if attrs.get("transB", 0) else W.T
            W = W * attrs.get("alpha", 1.0)
            b = np.zeros(W.shape[0])
            if len(node.input) > 2 and node.input[2]:
                if node.input[2] not in inits:
                    return None
                b = np.broadcast_to(inits[node.input[2]] * attrs.get("beta", 1.0), (W.shape[0],))
            return W.astype(np.float32), np.asarray(b, dtype=np.float32)
        if node.op_type == "Add":
            mm_name, b_name = node.input
            if mm_name in inits:
                mm_name, b_name = b_name, mm_name
            mm = producer.get(mm_name)
            if mm is None or mm.op_type != "MatMul" or b_name not in inits:
                return None
            if mm.input[0] != self.feature_output or mm.input[1] not in inits:
                return None
            W = inits[mm.input[1]].T
            return W.astype(np.float32), np.broadcast_to(inits[b_name], (W.shape[0],)).astype(np.float32)
        if node.op_type == "MatMul" and node.input[0] == self.feature_output and node.input[1] in inits:
            W = inits[node.input[1]].T
            return W.astype(np.float32), np.zeros(W.shape[0], np.float32)
        return None

    def _no_head_message(self) -> str:
        return (
            "OnnxModel could not read the head (W, b) from the graph: it needs the onnx package (pip install onnx), "
            "the model file, feature_output= naming the input of the final Gemm/MatMul, and constant weights. "
            "Otherwise pass head=(W, b)."
        )

    # ------------------------------------------------------------------------------------ running

    def _feed(self, x: Any) -> dict[str, np.ndarray]:
        if isinstance(x, Mapping):
            missing = [n for n in self._input_types if n not in x]
            if missing:
                raise InputError(f"OnnxModel: the inputs lack {missing}; the graph takes {list(self._input_types)}.")
            feed = {k: v for k, v in x.items() if k in self._input_types}
        else:
            if len(self.input_names) != 1:
                raise InputError(
                    f"OnnxModel: the graph takes several inputs {self.input_names}; pass a dict name -> array."
                )
            feed = {self.input_names[0]: x}
        out = {}
        for k, v in feed.items():
            arr = np.asarray(v)
            want = self._input_types.get(k)
            if want is not None and arr.dtype != want:
                arr = arr.astype(want)
            out[k] = np.ascontiguousarray(arr)
        return out

    def run(
        self, inputs: Any, output_names: list[str] | None = None, *, progress: bool = False
    ) -> dict[str, np.ndarray]:
        """Raw graph outputs over all batches, concatenated along the first axis.

        Parameters
        ----------
        inputs : ndarray, dict of arrays, list of samples or iterable of batches
        output_names : list of str, optional
            Default: every output of the session.

        Returns
        -------
        dict name -> ndarray
        """
        names = output_names or [o.name for o in self.session.get_outputs()]
        parts: dict[str, list] = {n: [] for n in names}
        for x, _ in self._batches(inputs, progress):
            for n, v in zip(names, self.session.run(names, self._feed(x))):
                parts[n].append(v)
        try:
            return {n: np.concatenate(v) for n, v in parts.items()}
        except ValueError as exc:
            raise InputError(
                f"OnnxModel: batch outputs differ in shape and cannot be joined ({exc}); pad inputs to one length."
            ) from None

    def _batches(self, inputs: Any, progress: bool):
        from tqdm.auto import tqdm

        gen, total = _iter_batches(inputs, self.batch_size)
        return iter(tqdm(gen, total=total, disable=not progress, desc="OnnxModel", unit="batch"))

    def _pool(self, z: np.ndarray, feed: dict[str, np.ndarray]) -> np.ndarray:
        if z.ndim == 2:
            return z
        if z.ndim != 3 or self.pooling is None:
            raise InputError(
                f"OnnxModel: feature output {self.feature_output!r} has shape {z.shape}; features must be one vector "
                "per input. For token outputs (batch, tokens, dim) pass pooling='mean' or 'first'."
            )
        if self.pooling == "first":
            return z[:, 0]
        mask = feed.get("attention_mask")
        if mask is None:
            return z.mean(axis=1)
        w = mask.astype(np.float32)[:, :, None]
        return (z * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)

    def extract(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ModelOutputs:
        """Features, logits (float32) and labels of ``inputs``.

        Parameters
        ----------
        inputs : ndarray, dict of arrays (one per graph input), list of samples, or iterable of batches
            Batches may be ``x`` or ``(x, y, ...)``; labels are collected when present. Token inputs of
            different lengths can come as batches (an iterable), each padded on its own.
        y : array-like, optional
            Labels (override labels from the batches).
        """
        names = [n for n in (self.feature_output, self.logits_output) if n is not None]
        feats, logits, labels = [], [], []
        n_with = n_without = 0
        for x, yb in self._batches(inputs, progress):
            feed = self._feed(x)
            res = dict(zip(names, self.session.run(names, feed)))
            if self.feature_output is not None:
                feats.append(self._pool(np.asarray(res[self.feature_output]), feed).astype(np.float32))
            if self.logits_output is not None:
                f = np.asarray(res[self.logits_output])
                if f.ndim != 2:
                    raise InputError(
                        f"OnnxModel: logits output {self.logits_output!r} has shape {f.shape}, expected (batch, n_classes)."
                    )
                logits.append(f.astype(np.float32))
            if yb is None:
                n_without += 1
            else:
                labels.append(np.asarray(yb).reshape(-1))
                n_with += 1
        if n_with + n_without == 0:
            raise InputError("OnnxModel got no batches from the inputs.")
        features = np.concatenate(feats) if feats else None
        logit_arr = np.concatenate(logits) if logits else None
        n = features.shape[0] if features is not None else cast(np.ndarray, logit_arr).shape[0]
        label_arr: np.ndarray | None
        if y is not None:
            label_arr = split_labels(y, n, "OnnxModel")
        elif n_with and n_without:
            raise InputError("OnnxModel: some batches came with labels and some without.")
        else:
            label_arr = np.concatenate(labels) if labels else None
        return ModelOutputs(features=features, logits=logit_arr, labels=label_arr)

    def __repr__(self) -> str:
        return f"OnnxModel(feature_output={self.feature_output!r}, logits_output={self.logits_output!r})"
