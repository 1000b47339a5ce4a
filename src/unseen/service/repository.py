"""The model repository: a directory of saved models, ``NAME/VERSION/``, loaded with :func:`unseen.load` only.

Layout::

    models/
      knn/                      a model name: letters, digits, ".", "_", "-" (at most 64, not starting with ".")
        1/                      a version, same rule; the default version is the highest (numbers compare as numbers)
          model.unseen          the artifact, saved with unseen.save: a detector, an OpenSetClassifier or a
                                ConformalFlagger (a directory "model/" in unseen's directory format works too)
          config.json           optional, see below
          reference.npz         optional arrays (read with allow_pickle=False), in the model's input space:
                                  features     training rows (a sample is enough): explanation exemplars and the
                                               feature-drift (MMD) reference
                                  labels       their classes (shown with the exemplars)
                                  calibration  held-out in-distribution rows: the score-drift (KS) reference and
                                               the predicted-class reference (a flagger's own calibration scores
                                               are used when there are none)

``config.json`` (every key optional)::

    {"encoder": "minilm",          built-in encoder for raw text in: "minilm" (torch) or "minilm-onnx"; the model
                                   must have been fitted on that encoder's features (384-d)
     "description": "...",
     "class_names": ["cat", ...],  names of the class indices 0..C-1 (detectors with a head, open-set classifiers)
     "sample_rate": 0.05,          share of rows whose feature vector is kept for drift tests (default: the server's)
     "store_text": false}          keep the text of kept rows (text models), to show on the dashboard

Nothing in a request names a file: requests pick a model from the loaded table, and a name that does not
match the rule above is refused before any lookup. Entries whose path leaves the repository (a symlink
pointing elsewhere) are not loaded. :meth:`ModelRepository.reload` loads new and changed versions and drops
removed ones; a version that fails to load keeps serving its previous artifact (the index says why).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..base import Detector
from ..decisions import ConformalFlagger, OpenSetClassifier
from ..exceptions import InputError, UnseenError

__all__ = ["LoadedModel", "ModelNotFound", "ModelRepository", "Scored", "check_name"]

log = logging.getLogger("unseen.service")

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ARTIFACTS = ("model.unseen", "model")
CONFIG_KEYS = {"encoder", "description", "class_names", "sample_rate", "store_text"}
#: Rows of the training sample kept in the store as the MMD reference.
REFERENCE_ROWS = 1000


class ModelNotFound(UnseenError, LookupError):
    """No loaded model (or version) by that name; the message lists what there is."""


def check_name(value: str, what: str = "model name") -> str:
    """``value`` if it is a valid model name or version, else :class:`InputError` (never a path)."""
    if not isinstance(value, str) or not NAME_RULE.match(value) or ".." in value:
        raise InputError(
            f"Invalid {what} {value!r}: use letters, digits, '.', '_' and '-' (at most 64 characters, "
            "not starting with '.' and without '..')."
        )
    return value


def version_key(version: str) -> tuple[int, int, str]:
    """Sort key: numeric versions by value, above them other names alphabetically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


@dataclass
class Scored:
    """What scoring a batch gives: one value per row."""

    scores: np.ndarray
    flags: np.ndarray  # True = unfamiliar
    decisions: np.ndarray | None = None  # score - threshold (detectors, open-set classifiers)
    p_values: np.ndarray | None = None  # conformal flaggers
    classes: np.ndarray | None = None  # closed-set predicted class (models with a head)
    labels: np.ndarray | None = None  # open-set label: a class or unknown_label (open-set classifiers)


@dataclass
class LoadedModel:
    """One loaded model version and everything served and monitored with it."""

    name: str
    version: str
    path: Path
    kind: str  # "detector", "flagger" or "openset"
    model: Any
    detector: Detector
    n_features: int
    sha256: str
    config: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None
    reference_features: np.ndarray | None = None
    reference_labels: np.ndarray | None = None
    reference_scores: np.ndarray | None = None
    reference_classes: dict[str, Any] | None = None
    loaded_ms: int = 0
    fingerprint: tuple = ()
    version_id: int | None = None  # the store's id, set when registered
    calibration_flags: tuple[int, int] | None = None  # (flagged, rows) of the held-out calibration rows

    # ------------------------------------------------------------------------------------ facts

    @property
    def store_id(self) -> int:
        """The store's id of this model version (the service registers every version it loads)."""
        if self.version_id is None:
            raise RuntimeError(f"model {self.name}/{self.version} is not registered in the store")
        return self.version_id

    @property
    def input(self) -> str:
        return "text" if self.encoder is not None else "features"

    @property
    def class_names(self) -> list[str] | None:
        return self.config.get("class_names")

    def has_classes(self) -> bool:
        """Whether the model predicts a class (open-set classifier, detector with a head or on logits)."""
        if self.kind == "openset":
            return True
        det = self.detector
        return getattr(det, "W_", None) is not None or det.input_kind == "logits"

    def monitor_info(self) -> dict[str, Any]:
        """What the monitor needs to judge the OOD rate: a conformal level and calibration size, or a rate."""
        m = self.model
        if self.kind == "flagger":
            if m.mode == "marginal" and not m.randomize:
                return {"alpha": float(m.alpha), "n_calibration": int(m.n_calibration_)}
            return {"rate": float(m.alpha)}
        if self.calibration_flags is not None and 0 <= self.calibration_flags[0] < self.calibration_flags[1]:
            flagged, n = self.calibration_flags
            return {"calibration_flags": flagged, "n_calibration": n}
        tpr = float(getattr(m, "tpr", getattr(self.detector, "tpr", 0.95)))
        return {"rate": round(max(1e-9, 1.0 - tpr), 12)}

    def metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol model metadata, with unseen's own facts under ``parameters``."""
        if self.input == "text":
            inputs = [
                {"name": "text", "datatype": "BYTES", "shape": [-1]},
                {"name": "features", "datatype": "FP32", "shape": [-1, self.n_features]},
            ]
        else:
            inputs = [{"name": "features", "datatype": "FP32", "shape": [-1, self.n_features]}]
        outputs = [{"name": name, "datatype": dtype, "shape": [-1]} for name, dtype in self.output_types().items()]
        m, det = self.model, self.detector
        params: dict[str, Any] = {
            "kind": self.kind,
            "detector": det.name,
            "input_kind": det.input_kind,
            "n_features": self.n_features,
            "head": getattr(det, "W_", None) is not None
            or (self.kind == "openset" and getattr(m, "W_", None) is not None),
            "encoder": self.config.get("encoder"),
            "description": self.config.get("description", ""),
            "sha256": self.sha256,
            "monitor": self.monitor_info(),
            "reference": {
                "features": None if self.reference_features is None else int(self.reference_features.shape[0]),
                "scores": None if self.reference_scores is None else int(self.reference_scores.shape[0]),
            },
        }
        if self.kind == "flagger":
            params.update(
                alpha=float(m.alpha), mode=m.mode, calibration_size=int(m.n_calibration_), threshold=float(det.offset_)
            )
        elif self.kind == "openset":
            params.update(
                threshold=float(m.threshold_),
                thresholds=m.thresholds,
                tpr=float(m.tpr),
                classes=_plain_list(m.classes_),
                unknown_label=_plain(m.unknown_label_),
                calibration_size=None,
            )
        else:
            params.update(threshold=float(det.offset_), tpr=float(det.tpr), calibration_size=None)
        if self.class_names:
            params["class_names"] = self.class_names
        return {
            "name": self.name,
            "versions": None,
            "platform": "unseen",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": params,
        }

    def output_types(self) -> dict[str, str]:
        """Output tensor names and OIP datatypes, in response order."""
        out = {"score": "FP64"}
        if self.kind == "flagger":
            out["p_value"] = "FP64"
        else:
            out["decision"] = "FP64"
        if self.kind == "openset":
            out["label"] = "BYTES" if self.model.classes_.dtype.kind in "US" else "INT64"
        elif self.has_classes():
            out["class"] = "INT64"
        if self.class_names and self.has_classes():
            out["class_name"] = "BYTES"
        out["verdict"] = "BYTES"
        return out

    # ------------------------------------------------------------------------------------ work

    def class_name(self, classes: list, flags: list[bool]) -> list[str]:
        """Names of predicted classes (``config.json``'s ``class_names``), "unknown" where an open-set classifier
        rejects the input."""
        names = self.class_names or []
        if self.kind == "openset":
            col = {c: i for i, c in enumerate(self.model.classes_.tolist())}
            idx = [col.get(c, -1) for c in classes]
        else:
            idx = [int(c) for c in classes]
        out = [names[i] if 0 <= i < len(names) else str(c) for i, c in zip(idx, classes)]
        if self.kind == "openset":
            out = ["unknown" if f else n for n, f in zip(out, flags)]
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Texts to the model's input features with its built-in encoder."""
        return np.asarray(self.encoder.encode(texts), dtype=np.float32)

    def _head_classes(self, X: np.ndarray) -> np.ndarray | None:
        det = self.detector
        W = getattr(det, "W_", None)
        if W is not None:
            return np.argmax(X @ W.T.astype(X.dtype, copy=False) + det.b_, axis=1)
        if det.input_kind == "logits":
            return np.argmax(X, axis=1)
        return None

    def score(self, X: np.ndarray) -> Scored:
        """Score validated rows ``(n, n_features)``."""
        m = self.model
        if self.kind == "openset":
            scores = np.asarray(m.score_samples(X), dtype=np.float64)
            closed = m.predict_closed(X)
            col = {c: i for i, c in enumerate(m.classes_.tolist())}
            idx = np.fromiter((col[c] for c in closed.tolist()), dtype=np.int64, count=closed.shape[0])
            decisions = scores - m.thresholds_[idx]
            flags = decisions < 0
            labels = (
                np.where(flags, m.unknown_label_, closed)
                if closed.dtype.kind not in "US"
                else np.array([str(m.unknown_label_) if f else c for f, c in zip(flags, closed.tolist())], dtype=object)
            )
            return Scored(scores, flags, decisions=decisions, classes=closed, labels=labels)
        if self.kind == "flagger":
            scores = np.asarray(self.detector.score_samples(X), dtype=np.float64)
            classes = self._head_classes(X)
            if m.mode == "class_conditional" or m.randomize:
                p = np.asarray(m.p_values(X, classes=classes) if m.mode == "class_conditional" else m.p_values(X))
            else:  # the flagger's formula on the scores already computed (one scoring pass, not two)
                cal = m.calibration_scores_
                p = (1.0 + np.searchsorted(cal, scores, side="right")) / (cal.shape[0] + 1.0)
                if m.epsilon_:
                    p = np.minimum(1.0, p + m.epsilon_)
            return Scored(scores, p <= m.alpha, p_values=p, classes=classes)
        det = self.detector
        scores = np.asarray(det.score_samples(X), dtype=np.float64)
        decisions = scores - det.offset_
        return Scored(scores, decisions < 0, decisions=decisions, classes=self._head_classes(X))

    def predicted_classes(self, X: np.ndarray) -> np.ndarray | None:
        """Closed-set predicted classes (for the class-prior reference), or None without a head."""
        if self.kind == "openset":
            return self.model.predict_closed(X)
        return self._head_classes(X)

    def explain(self, X: np.ndarray, k: int) -> list[dict[str, Any]]:
        """Explanations of rows, as :func:`unseen.explain` gives them (its verdict is the detector's threshold;
        a flagger's verdict is its p-value)."""
        import unseen

        out = unseen.explain(
            self.detector, X, reference=self.reference_features, reference_labels=self.reference_labels, k=k
        )
        return [e.to_dict() for e in out]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _plain_list(a: np.ndarray) -> list:
    return [_plain(v) for v in a.tolist()]


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _fingerprint(folder: Path) -> tuple:
    parts = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            parts.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(parts)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a version folder, validated (unknown keys are refused)."""
    path = folder / "config.json"
    if not path.exists():
        return {}
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(cfg).__name__}.")
    unknown = set(cfg) - CONFIG_KEYS
    if unknown:
        raise InputError(f"{path}: unknown key(s) {sorted(unknown)}; known keys are {sorted(CONFIG_KEYS)}.")
    if cfg.get("encoder") is not None:
        from ..encoders import list_encoders

        name = str(cfg["encoder"]).lower().replace("_", "-")
        if name not in list_encoders() or name.startswith("efficientnet"):
            raise InputError(
                f"{path}: encoder {cfg['encoder']!r} is not a built-in text encoder; use 'minilm' or 'minilm-onnx'."
            )
        cfg["encoder"] = name
    rate = cfg.get("sample_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
        raise InputError(f"{path}: sample_rate must be a number in [0, 1], got {rate!r}.")
    names = cfg.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InputError(f"{path}: class_names must be a list of strings.")
    if not isinstance(cfg.get("store_text", False), bool):
        raise InputError(f"{path}: store_text must be true or false.")
    return cfg


def _read_reference(folder: Path, n_features: int) -> dict[str, np.ndarray]:
    path = folder / "reference.npz"
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it as an .npz without pickle ({exc}).") from None
    unknown = set(arrays) - {"features", "labels", "calibration"}
    if unknown:
        raise InputError(f"{path}: unknown array(s) {sorted(unknown)}; expected features, labels, calibration.")
    for key in ("features", "calibration"):
        if key in arrays:
            a = arrays[key]
            if a.ndim != 2 or a.shape[1] != n_features or a.dtype.kind not in "fiu" or not np.isfinite(a).all():
                raise InputError(
                    f"{path}: {key} must be finite numbers of shape (n, {n_features}), got {a.dtype} {a.shape}."
                )
    if "labels" in arrays and ("features" not in arrays or arrays["labels"].shape[0] != arrays["features"].shape[0]):
        raise InputError(f"{path}: labels need features with one row per label.")
    return arrays


def load_version(root: Path, name: str, version: str, *, warm_up: bool = True) -> LoadedModel:
    """Load ``root/name/version`` (see the module docstring); raises :class:`InputError` or
    :class:`unseen.PersistenceError` with the reason."""
    import unseen

    folder = root / name / version
    if not _inside(folder, root):
        raise InputError(f"{folder} resolves outside the repository {root}; refusing to load it.")
    artifacts = [folder / a for a in ARTIFACTS if (folder / a).exists()]
    if not artifacts:
        raise InputError(f"{folder}: no model.unseen (or model/ directory); save one with unseen.save(model, path).")
    artifact = artifacts[0]
    if not _inside(artifact, root):
        raise InputError(f"{artifact} resolves outside the repository {root}; refusing to load it.")
    cfg = read_config(folder)
    model = unseen.load(artifact)
    if isinstance(model, ConformalFlagger):
        kind, det = "flagger", model.detector
        if model.mode == "class_conditional" and not (
            getattr(det, "W_", None) is not None or det.input_kind == "logits"
        ):
            raise InputError(
                f"{artifact}: a class-conditional flagger needs each input's class; its detector has no "
                "head to predict it. Save a marginal flagger, or a detector fitted with head=(W, b)."
            )
    elif isinstance(model, OpenSetClassifier):
        kind, det = "openset", model.detector_
    elif isinstance(model, Detector):
        kind, det = "detector", model
    else:  # pragma: no cover - unseen.load returns only these
        raise InputError(f"{artifact} holds a {type(model).__name__}, which the service cannot serve.")
    n_features = int(det.n_features_in_)
    encoder = None
    if cfg.get("encoder"):
        from ..encoders import get_encoder

        encoder = get_encoder(cfg["encoder"])
        if int(encoder.n_features) != n_features:
            raise InputError(
                f"{folder}: the encoder {cfg['encoder']} gives {encoder.n_features} features but the model "
                f"was fitted on {n_features}."
            )
        if warm_up:
            encoder.encode(["warm up"])  # load the weights now, not on the first request
    ref = _read_reference(folder, n_features)
    entry = LoadedModel(
        name=name,
        version=version,
        path=folder,
        kind=kind,
        model=model,
        detector=det,
        n_features=n_features,
        sha256=_sha256_of(artifact),
        config=cfg,
        encoder=encoder,
        reference_features=ref.get("features"),
        reference_labels=ref.get("labels"),
        loaded_ms=int(time.time() * 1000),
    )
    if entry.reference_labels is not None and entry.reference_labels.dtype.kind not in "iu":
        entry.reference_labels = None  # explain shows integer labels only
    calibration = ref.get("calibration")
    if kind == "flagger":
        entry.reference_scores = np.asarray(model.calibration_scores_, dtype=np.float64)
    elif calibration is not None:
        scored = entry.score(np.asarray(calibration))
        entry.reference_scores = np.asarray(scored.scores, dtype=np.float64)
        entry.calibration_flags = (int(scored.flags.sum()), int(scored.flags.shape[0]))
    basis = calibration if calibration is not None else entry.reference_features
    if basis is not None and entry.has_classes():
        pred = entry.predicted_classes(np.asarray(basis))
        assert pred is not None  # has_classes()
        values, counts = np.unique(pred, return_counts=True)
        entry.reference_classes = {
            "labels": _plain_list(values),
            "counts": [int(c) for c in counts],
            "basis": "calibration" if calibration is not None else "features",
        }
    return entry


@dataclass
class IndexEntry:
    """A version found in the repository: its state (``READY`` or ``UNAVAILABLE``) and why."""

    name: str
    version: str
    state: str
    reason: str = ""


class ModelRepository:
    """The loaded models of a repository directory (``root=None``: an empty repository).

    Parameters
    ----------
    root : path, optional
    on_load : callable, optional
        Called with each newly loaded :class:`LoadedModel` (the service registers it in the store).
    warm_up : bool, default True
        Load text encoders' weights at load time.

    Examples
    --------
    >>> repo = ModelRepository("models/"); repo.reload()           # doctest: +SKIP
    >>> repo.get("knn").metadata()["parameters"]["threshold"]         # doctest: +SKIP
    """

    def __init__(
        self, root: str | Path | None, *, on_load: Callable[[LoadedModel], None] | None = None, warm_up: bool = True
    ):
        self.root = Path(root).expanduser().resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise InputError(
                f"The model repository {root} is not a directory; create it with one folder per model "
                "(models/NAME/VERSION/model.unseen), or use --demo."
            )
        self.on_load = on_load
        self.warm_up = warm_up
        self._models: dict[str, dict[str, LoadedModel]] = {}
        self._index: list[IndexEntry] = []
        self._seen: dict[tuple[str, str], tuple] = {}
        self._lock = threading.Lock()
        self.scanned_ms = 0

    def _scan(self) -> list[tuple[str, str, Path | None, str]]:
        """(name, version, folder or None, problem) for every version folder."""
        found: list[tuple[str, str, Path | None, str]] = []
        if self.root is None:
            return found
        for model_dir in sorted(self.root.iterdir()):
            if not model_dir.is_dir() or model_dir.name.startswith("."):
                continue
            name = model_dir.name
            if not NAME_RULE.match(name):
                found.append((name, "", None, "the folder name is not a valid model name"))
                continue
            if not _inside(model_dir, self.root):
                found.append((name, "", None, "the folder resolves outside the repository"))
                continue
            for vdir in sorted(model_dir.iterdir()):
                if not vdir.is_dir() or vdir.name.startswith("."):
                    continue
                if not NAME_RULE.match(vdir.name):
                    found.append((name, vdir.name, None, "the folder name is not a valid version"))
                elif not _inside(vdir, self.root):
                    found.append((name, vdir.name, None, "the folder resolves outside the repository"))
                else:
                    found.append((name, vdir.name, vdir, ""))
        return found

    def reload(self) -> list[IndexEntry]:
        """Load new and changed versions, drop removed ones; returns the new index."""
        with self._lock:
            old = self._models
            new: dict[str, dict[str, LoadedModel]] = {}
            index: list[IndexEntry] = []
            seen: dict[tuple[str, str], tuple] = {}
            for name, version, folder, problem in self._scan():
                if folder is None:
                    index.append(IndexEntry(name, version, "UNAVAILABLE", problem))
                    continue
                previous = old.get(name, {}).get(version)
                fp = seen[(name, version)] = _fingerprint(folder)  # before loading: a later change is seen next time
                try:
                    if previous is not None and previous.fingerprint == fp:
                        entry = previous
                    else:
                        entry = load_version(cast(Path, self.root), name, version, warm_up=self.warm_up)
                        entry.fingerprint = fp
                        if self.on_load is not None:
                            self.on_load(entry)
                        log.info("loaded %s/%s (%s, %s)", name, version, entry.kind, entry.detector.name)
                    new.setdefault(name, {})[version] = entry
                    index.append(IndexEntry(name, version, "READY"))
                except Exception as exc:  # any failure keeps the service up; the index says why
                    reason = f"{type(exc).__name__}: {exc}"
                    if previous is not None:
                        new.setdefault(name, {})[version] = previous
                        index.append(
                            IndexEntry(
                                name, version, "READY", f"reload failed, serving the previous artifact: {reason}"
                            )
                        )
                    else:
                        index.append(IndexEntry(name, version, "UNAVAILABLE", reason))
                    log.warning("could not load %s/%s: %s", name, version, reason)
            self._models = new
            self._index = index
            self._seen = seen
            self.scanned_ms = int(time.time() * 1000)
            return list(index)

    def changed(self) -> bool:
        """Whether a reload would find something new (cheap: file names, sizes and times)."""
        current = {(n, v): _fingerprint(f) for n, v, f, _ in self._scan() if f is not None}
        return current != self._seen

    def index(self) -> list[IndexEntry]:
        return list(self._index)

    def models(self) -> list[LoadedModel]:
        """Every loaded version."""
        return [e for vs in self._models.values() for e in vs.values()]

    def versions(self, name: str) -> list[str]:
        return sorted(self._models.get(name, {}), key=version_key)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded model ``name`` at ``version`` (default: the highest); :class:`ModelNotFound` otherwise."""
        check_name(name)
        if version is not None:
            check_name(version, "version")
        versions = self._models.get(name)
        if not versions:
            names = sorted(self._models)
            raise ModelNotFound(
                f"No model named {name!r}; the repository serves {names if names else 'no models'} "
                "(GET /v2/repository/index lists them)."
            )
        if version is None:
            version = max(versions, key=version_key)
        if version not in versions:
            raise ModelNotFound(f"Model {name!r} has no version {version!r}; it has {self.versions(name)}.")
        return versions[version]

    def ready(self) -> tuple[bool, list[str]]:
        """Whether every version found was loaded (and the reasons where not)."""
        problems = [f"{e.name}/{e.version}: {e.reason}" for e in self._index if e.state != "READY"]
        return not problems, problems


def sample_rows(n: int, rate: float, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Rows kept for drift: each with probability ``rate``, at most ``cap`` (a uniform subset of those)."""
    if rate <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.flatnonzero(rng.random(n) < rate)
    if keep.size > cap:
        keep = np.sort(rng.choice(keep, cap, replace=False))
    return keep


__all__ += ["IndexEntry", "load_version", "read_config", "sample_rows", "version_key"]
