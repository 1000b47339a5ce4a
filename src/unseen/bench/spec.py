"""Benchmark spec files: your own features, labels, head and OOD sets, described in YAML or TOML.

A spec names array files relative to its own folder::

    name: my-model
    representation: resnet50            # optional, free text for the report
    train: {features: train_feats.npy, labels: train_labels.npy}
    val: {features: val.npz}            # npz with "features" (or "X") and optional "labels" (or "y")
    test: {features: test.npy, labels: test_labels.npy}
    head: head.npz                      # optional: arrays W (classes x features) and b
    ood:
      svhn: {features: svhn.npy, kind: far}
      cifar100: {features: c100.parquet, kind: near}
    detectors: [msp, energy, knn]       # optional: default every detector that can run
    seeds: [0]                          # optional: default [0]
    params: {knn: {k: 10}}              # optional: fixed hyperparameters (no tuning for these)

Each split is a file name, or a table with ``features`` and optionally ``labels``, ``key`` (the array in
an ``.npz`` features file), ``labels_key`` and ``label_column`` (Parquet). Without ``labels``, an ``.npz``
features file's ``labels``/``y`` array, or a Parquet file's ``label``/``labels``/``y`` column, is used when
present. ``val`` is optional: without it 20 % of the training rows (stratified, seed 0) become the
validation split. OOD kinds: ``near``, ``far``, or ``covariate`` (known classes under a shift; optional
``labels``). Arrays are read without pickle (:mod:`unseen.io`).

>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); rng = np.random.default_rng(0)
>>> for split in ("train", "test"):
...     np.savez(d / f"{split}.npz", features=rng.normal(size=(40, 4)), labels=rng.integers(0, 2, 40))
>>> np.save(d / "far.npy", rng.normal(5, 1, size=(10, 4)))
>>> _ = (d / "spec.yaml").write_text("train: train.npz\\ntest: test.npz\\nood:\\n  far: {features: far.npy, kind: far}\\n")
>>> spec = load_spec(d / "spec.yaml")
>>> spec.data.X_train.shape, spec.data.X_val.shape, spec.data.ood_kind
((32, 4), (8, 4), {'far': 'far'})
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..datasets._base import OOD_KINDS, OpenSetData
from ..exceptions import InputError, MissingDependencyError
from ..io import read_array, read_head, read_table_features

__all__ = ["Spec", "load_spec", "SPEC_SUFFIXES"]

SPEC_SUFFIXES = (".yaml", ".yml", ".toml")
TOP_KEYS = (
    "name",
    "representation",
    "description",
    "train",
    "val",
    "test",
    "head",
    "ood",
    "detectors",
    "seeds",
    "params",
)
SPLIT_KEYS = ("features", "labels", "key", "labels_key", "label_column")
OOD_KEYS = (*SPLIT_KEYS, "kind")
_FEATURE_KEYS, _LABEL_KEYS, _LABEL_COLUMNS = ("features", "X"), ("labels", "y"), ("label", "labels", "y")


@dataclass
class Spec:
    """A loaded spec: the data plus the run settings it names."""

    path: Path
    data: OpenSetData
    detectors: list[str] | None = None
    seeds: list[int] | None = None
    params: dict[str, dict] = field(default_factory=dict)


class _Reader:
    """Reads one spec; every error names the spec, the key and the fix."""

    def __init__(self, path: Path):
        self.path = path
        self.root = path.parent

    def fail(self, where: str, message: str) -> InputError:
        return InputError(f"{self.path}: {where}: {message}")

    def check_keys(self, table: Mapping, allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise self.fail(where, f"unknown key {key!r}; allowed keys are {', '.join(allowed)}.{hint}")

    def file(self, value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a file name (relative to {self.root}), got {value!r}.")
        p = Path(value)
        p = p if p.is_absolute() else self.root / p
        if not p.is_file():
            raise self.fail(
                where, f"file {p} does not exist; fix the path (relative to the spec's folder {self.root})."
            )
        return p

    def array(self, path: Path, key: str | None, where: str, *, candidates: tuple[str, ...] = ()) -> np.ndarray:
        if path.suffix == ".npz" and key is None and candidates:
            with np.load(path, allow_pickle=False) as npz:
                names = list(npz.keys())
            if len(names) > 1:
                key = next((k for k in candidates if k in names), None)
                if key is None:
                    raise self.fail(
                        where,
                        f"{path.name} holds arrays {names} and none is named {' or '.join(candidates)}; "
                        f"name the array with key: ...",
                    )
        try:
            return read_array(path, key)
        except InputError as exc:
            raise self.fail(where, str(exc)) from None

    def split(self, entry: Any, where: str, *, ood: bool = False) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Features, labels (or None) and (OOD only) the kind of one split entry."""
        table = {"features": entry} if isinstance(entry, str) else entry
        if not isinstance(table, Mapping):
            raise self.fail(where, f"expected a file name or a table with 'features', got {entry!r}.")
        self.check_keys(table, OOD_KEYS if ood else SPLIT_KEYS, where)
        if "features" not in table:
            raise self.fail(where, "missing 'features': give the file of this split's feature matrix.")
        fpath = self.file(table["features"], f"{where}.features")
        labels = None
        if fpath.suffix == ".parquet":
            column = table.get("label_column")
            if column is None:
                column = self._default_label_column(fpath)
            try:
                X, labels = read_table_features(fpath, column)
            except InputError as exc:
                raise self.fail(f"{where}.features", str(exc)) from None
        elif fpath.suffix in (".npy", ".npz"):
            if table.get("label_column") is not None:
                raise self.fail(where, "label_column applies to Parquet files; for .npy/.npz give labels: FILE.")
            X = self.array(fpath, table.get("key"), f"{where}.features", candidates=_FEATURE_KEYS)
            if fpath.suffix == ".npz" and "labels" not in table:
                with np.load(fpath, allow_pickle=False) as npz:
                    found = next((k for k in _LABEL_KEYS if k in npz and k != table.get("key")), None)
                    labels = npz[found] if found else None
        else:
            raise self.fail(f"{where}.features", f"{fpath.name}: expected a .npy, .npz or .parquet file.")
        if "labels" in table:
            lpath = self.file(table["labels"], f"{where}.labels")
            labels = self.array(lpath, table.get("labels_key"), f"{where}.labels", candidates=_LABEL_KEYS)
        X = np.asarray(X)
        if X.ndim != 2:
            raise self.fail(
                f"{where}.features", f"expected a 2-D feature matrix (rows x features), got shape {X.shape}."
            )
        if not np.issubdtype(X.dtype, np.number):
            raise self.fail(f"{where}.features", f"expected numeric features, got dtype {X.dtype}.")
        if labels is not None:
            labels = self.labels(labels, X.shape[0], where)
        kind = None
        if ood:
            kind = table.get("kind")
            if kind is None:
                raise self.fail(
                    where,
                    f"missing 'kind': one of {', '.join(OOD_KINDS)} (near: unseen classes of the same "
                    "kind; far: other data; covariate: known classes under a shift).",
                )
            if kind not in OOD_KINDS:
                raise self.fail(f"{where}.kind", f"unknown kind {kind!r}; expected one of {', '.join(OOD_KINDS)}.")
        return X, labels, kind

    def _default_label_column(self, path: Path) -> str | None:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise MissingDependencyError('Parquet files need pyarrow: pip install "unseen[parquet]"') from exc
        names = pq.read_schema(path).names
        return next((c for c in _LABEL_COLUMNS if c in names), None)

    def labels(self, labels: np.ndarray, n: int, where: str) -> np.ndarray:
        y = np.asarray(labels)
        if y.ndim == 2 and 1 in y.shape:
            y = y.ravel()
        if y.ndim != 1:
            raise self.fail(f"{where}.labels", f"expected one label per row (1-D), got shape {y.shape}.")
        if y.shape[0] != n:
            raise self.fail(
                f"{where}.labels", f"{y.shape[0]} labels for {n} feature rows; give one label per row of features."
            )
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise self.fail(
                f"{where}.labels",
                f"expected non-negative integer class labels, got dtype {y.dtype}"
                f"{f' (min {y.min()})' if np.issubdtype(y.dtype, np.number) and y.size else ''}; "
                "encode classes as 0..C-1.",
            )
        return y.astype(np.int64)


def _parse(path: Path) -> dict:
    text = path.read_bytes()
    if path.suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
    else:
        try:
            import yaml
        except ImportError as exc:
            raise MissingDependencyError(
                "YAML specs need PyYAML: pip install pyyaml (or write the spec as .toml)"
            ) from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping of keys ({', '.join(TOP_KEYS)}), got {type(doc).__name__}.")
    return doc


def load_spec(path: str | Path) -> Spec:
    """Read a YAML/TOML benchmark spec and the arrays it names.

    Parameters
    ----------
    path : str or Path
        A ``.yaml``, ``.yml`` or ``.toml`` file; array paths inside are relative to its folder.

    Returns
    -------
    Spec
        ``data`` (an :class:`~unseen.datasets.OpenSetData`), and the optional ``detectors``, ``seeds`` and
        ``params``.

    Raises
    ------
    InputError
        Naming the spec file, the key and the fix: unknown keys, missing files, wrong dimensions, label
        length mismatches, unknown OOD kinds, unknown detectors.
    """
    path = Path(path)
    if path.suffix not in SPEC_SUFFIXES:
        raise InputError(f"{path}: a spec must be a {', '.join(SPEC_SUFFIXES)} file.")
    if not path.is_file():
        raise InputError(f"{path}: spec file does not exist.")
    doc = _parse(path)
    r = _Reader(path)
    r.check_keys(doc, TOP_KEYS, "top level")
    for key in ("train", "test", "ood"):
        if key not in doc:
            raise r.fail(
                "top level",
                f"missing '{key}'"
                + (
                    ": a table of named OOD sets, e.g. ood: {svhn: {features: svhn.npy, kind: far}}"
                    if key == "ood"
                    else f": give the {key} features."
                ),
            )
    X_tr, y_tr, _ = r.split(doc["train"], "train")
    d = X_tr.shape[1]

    def same_dims(X: np.ndarray, where: str) -> None:
        if X.shape[1] != d:
            raise r.fail(
                f"{where}.features",
                f"{X.shape[1]} features per row, but train has {d}; every split must come "
                "from the same encoder / layer.",
            )

    X_te, y_te, _ = r.split(doc["test"], "test")
    same_dims(X_te, "test")
    description = str(doc.get("description", ""))
    if "val" in doc:
        X_va, y_va, _ = r.split(doc["val"], "val")
        same_dims(X_va, "val")
    else:
        rng = np.random.default_rng(0)
        groups = [np.arange(len(X_tr))] if y_tr is None else [np.flatnonzero(y_tr == c) for c in np.unique(y_tr)]
        val_idx = np.sort(np.concatenate([rng.choice(g, int(round(0.2 * g.size)), replace=False) for g in groups]))
        if val_idx.size == 0:
            raise r.fail("top level", "missing 'val', and train is too small to hold out 20% as validation rows.")
        fit_idx = np.setdiff1d(np.arange(len(X_tr)), val_idx)
        X_va, y_va = X_tr[val_idx], None if y_tr is None else y_tr[val_idx]
        X_tr, y_tr = X_tr[fit_idx], None if y_tr is None else y_tr[fit_idx]
        description = (
            description + " " if description else ""
        ) + "Validation: 20% of the training rows (stratified, seed 0)."
    if (y_tr is None) != (y_va is None):
        raise r.fail(
            "val" if y_va is None else "train",
            "labels are given for one of train/val but not the other; give labels for both or for neither.",
        )
    head = None
    if doc.get("head") is not None:
        hpath = r.file(doc["head"], "head")
        try:
            W, b = read_head(hpath)
        except InputError as exc:
            raise r.fail("head", str(exc)) from None
        W = np.asarray(W, dtype=np.float64)
        b = np.zeros(W.shape[0]) if b is None else np.asarray(b, dtype=np.float64).ravel()
        if W.ndim != 2 or W.shape[1] != d:
            transposed = W.ndim == 2 and W.shape[0] == d
            raise r.fail(
                "head",
                f"W has shape {W.shape}, expected (n_classes, {d}) for {d}-dimensional features"
                + ("; it looks transposed: save W.T." if transposed else "."),
            )
        if b.shape != (W.shape[0],):
            raise r.fail("head", f"b has shape {b.shape}, expected ({W.shape[0]},), one bias per row of W.")
        for where, y in (("train", y_tr), ("val", y_va), ("test", y_te)):
            if y is not None and y.size and y.max() >= W.shape[0]:
                raise r.fail(
                    f"{where}.labels",
                    f"label {int(y.max())} but the head has only {W.shape[0]} classes (0..{W.shape[0] - 1}).",
                )
        head = (W, b)
    if not isinstance(doc["ood"], Mapping) or not doc["ood"]:
        raise r.fail("ood", "expected a table of named OOD sets, e.g. ood: {svhn: {features: svhn.npy, kind: far}}.")
    ood: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    ood_labels: dict[str, np.ndarray] = {}
    for name, entry in doc["ood"].items():
        X, y, kind = r.split(entry, f"ood.{name}", ood=True)
        same_dims(X, f"ood.{name}")
        ood[str(name)], kinds[str(name)] = X, str(kind)
        if y is not None:
            ood_labels[str(name)] = y
    detectors = doc.get("detectors")
    if detectors is not None:
        if isinstance(detectors, str):
            detectors = [d_.strip() for d_ in detectors.split(",") if d_.strip()]
        if not isinstance(detectors, list) or not all(isinstance(x, str) for x in detectors) or not detectors:
            raise r.fail("detectors", f"expected a list of detector names, e.g. [msp, knn], got {detectors!r}.")
        from ..registry import _table

        known = sorted(_table())
        for name in detectors:
            if name.lower().replace("-", "_") not in known:
                close = difflib.get_close_matches(name, known, n=1)
                raise r.fail(
                    "detectors",
                    f"unknown detector {name!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; available: {', '.join(known)}.",
                )
    seeds = doc.get("seeds")
    if seeds is not None:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = [seeds]
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise r.fail("seeds", f"expected a list of integers, e.g. [0, 1, 2], got {seeds!r}.")
    params = doc.get("params") or {}
    if not isinstance(params, Mapping) or not all(isinstance(v, Mapping) for v in params.values()):
        raise r.fail(
            "params", f"expected a table of detector -> parameters, e.g. params: {{knn: {{k: 10}}}}, got {params!r}."
        )
    classes = [int(y.max()) + 1 for y in (y_tr, y_va, y_te) if y is not None and y.size]
    data = OpenSetData(
        name=str(doc.get("name") or path.stem),
        representation=str(doc.get("representation") or "features"),
        seed=int(seeds[0]) if seeds else 0,
        X_train=X_tr,
        # An unlabelled spec keeps None here: DataShape.of marks the detectors that need labels unavailable.
        y_train=cast(np.ndarray, y_tr),
        X_val=X_va,
        y_val=cast(np.ndarray, y_va),
        X_test=X_te,
        y_test=cast(np.ndarray, y_te),
        ood=ood,
        ood_kind=kinds,
        head=head,
        class_names=[str(c) for c in range(max(classes))] if classes else [],
        ood_labels=ood_labels,
        description=description,
    )
    return Spec(path=path, data=data, detectors=detectors, seeds=seeds, params={k: dict(v) for k, v in params.items()})
