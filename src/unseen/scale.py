"""Scoring and fitting data larger than one machine: shards of Parquet or ``.npy`` files, in-process or on Ray.

:func:`score_files` scores a directory, a glob or a list of shards with a saved detector and writes the scores
as Parquet shards (one per block of input rows, named by its position, so a re-run skips what is done).
:func:`fit_files` fits a *mergeable* detector (``cls.mergeable``: Mahalanobis, RelativeMahalanobis, Gaussian,
ViM, Residual, NECO) as a map over blocks of rows and a combine of their moments on the driver.

``engine="local"`` runs in this process; ``engine="ray"`` runs the same blocks through ``ray.data``
(``map_batches`` over an actor pool, the detector loaded once per actor) on a local Ray (``ray.init()``, the
default) or an existing cluster (``address="ray://head:10001"`` or ``"auto"``). Both engines cut the input into
the same blocks and combine them in the same order, so their scores and fitted statistics are **identical**
(bit for bit); they also equal ``det.fit(list_of_blocks)`` in one process, and plain ``det.fit(X)`` / one
``score_samples(X)`` call up to float rounding (a different blocking of the same sums). On a cluster the
input paths must be readable from every node (a shared file system); the detector travels through Ray's
object store, so it need not be.

Output columns: ``source`` (input file), ``row`` (row number in it), ``score``, ``decision``
(``score - offset_``) and ``verdict`` (``"known"`` / ``"unfamiliar"``), as ``unseen score`` writes.

>>> import unseen.scale  # doctest: +SKIP
>>> unseen.scale.score_files("knn.unseen", "features/*.parquet", "scores/", engine="ray")  # doctest: +SKIP
ScoreReport(rows=1000000000, shards=7630, ...)
"""

from __future__ import annotations

import glob as _glob
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InputError, MissingDependencyError

__all__ = ["Block", "FitReport", "ScoreReport", "blocks_of", "fit_files", "read_block", "score_files"]

#: Bytes of float32 features per block when ``block_rows`` is not given (128 MB).
BLOCK_BYTES = 1 << 27
SUFFIXES = (".parquet", ".npy")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Block:
    """Rows ``start:stop`` of one input file, the unit of work; ``index`` orders the blocks of a job."""

    index: int
    path: str
    start: int
    stop: int
    #: Parquet row groups holding the rows (empty for ``.npy``).
    row_groups: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class ScoreReport:
    """What :func:`score_files` did."""

    rows: int
    shards: int
    skipped: int
    unfamiliar: int
    output: Path
    engine: str
    seconds: float
    #: The largest peak resident memory of a process that scored (an actor, or this process), in MB.
    peak_rss_mb: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class FitReport:
    """What :func:`fit_files` did (the fitted detector is returned beside it)."""

    rows: int
    blocks: int
    engine: str
    seconds: float


# ---------------------------------------------------------------------------------------------------- inputs


def _files(inputs: Any) -> list[str]:
    """Input shards: a directory (its ``.parquet`` and ``.npy`` files), a glob, a file, or a list of these."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out: list[str] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        elif any(ch in text for ch in "*?["):
            found = sorted(p for p in _glob.glob(text) if Path(p).suffix in SUFFIXES)
        elif path.is_file():
            found = [text]
        else:
            raise InputError(f"unseen.scale: {text} is not a file, a directory or a glob that matches files.")
        if not found:
            raise InputError(f"unseen.scale: {text} holds no .parquet or .npy files.")
        for f in found:
            if Path(f).suffix not in SUFFIXES:
                raise InputError(f"unseen.scale: {f} is neither .parquet nor .npy; convert it first.")
        out += found
    if not out:
        raise InputError("unseen.scale: no input files given.")
    return out


def _npy_shape(path: str) -> tuple[int, int]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 2:
        raise InputError(f"unseen.scale: {path} holds an array of shape {arr.shape}; expected (rows, features).")
    return int(arr.shape[0]), int(arr.shape[1])


def blocks_of(inputs: Any, *, block_rows: int | None = None) -> list[Block]:
    """Cut the input files into blocks of at most ``block_rows`` rows (default: 128 MB of float32 features).

    Parquet files are cut at row-group boundaries (a row group larger than ``block_rows`` is one block).

    Examples
    --------
    >>> [b.rows for b in blocks_of(["a.npy"], block_rows=4)]  # doctest: +SKIP
    [4, 4, 2]
    """
    from .io import _pyarrow

    out: list[Block] = []
    for path in _files(inputs):
        if path.endswith(".npy"):
            n, d = _npy_shape(path)
            rows = block_rows or max(1, BLOCK_BYTES // (4 * d))
            for s in range(0, n, rows):
                out.append(Block(len(out), path, s, min(n, s + rows)))
            continue
        pq = _pyarrow().parquet
        meta = pq.ParquetFile(path).metadata
        width = max(1, meta.num_columns)
        rows = block_rows or max(1, BLOCK_BYTES // (4 * width))
        start, count = 0, 0
        groups: list[int] = []
        for g in range(meta.num_row_groups):
            n_g = meta.row_group(g).num_rows
            if groups and count + n_g > rows:
                out.append(Block(len(out), path, start, start + count, tuple(groups)))
                start, groups, count = start + count, [], 0
            groups.append(g)
            count += n_g
        if groups:
            out.append(Block(len(out), path, start, start + count, tuple(groups)))
    return out


def read_block(
    block: Block, *, feature_column: str | None = None, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The features (float32 stays float32) and labels (or None) of one block."""
    from .io import _pyarrow, table_features

    if block.path.endswith(".npy"):
        if label_column is not None:
            raise InputError("unseen.scale: label_column applies to Parquet inputs; for .npy pass labels=.")
        arr = np.load(block.path, mmap_mode="r", allow_pickle=False)
        return np.array(arr[block.start : block.stop]), None
    pq = _pyarrow().parquet
    table = pq.ParquetFile(block.path).read_row_groups(list(block.row_groups))
    if feature_column is not None:
        if feature_column not in table.column_names:
            raise InputError(
                f"unseen.scale: {block.path} has no column {feature_column!r}; columns: {table.column_names}."
            )
        keep = [feature_column] + ([label_column] if label_column else [])
        table = table.select(keep)
    return table_features(table, block.path, label_column)


def _labels_for(block: Block, labels: Any, offsets: dict[str, int]) -> np.ndarray | None:
    if labels is None:
        return None
    start = offsets[block.path] + block.start
    return np.asarray(labels[start : start + block.rows])


def _file_offsets(blocks: Sequence[Block]) -> dict[str, int]:
    """Row number of each file's first row in the concatenation of all files (in block order)."""
    offsets: dict[str, int] = {}
    total = 0
    for b in blocks:
        if b.path not in offsets:
            offsets[b.path] = total
        total = max(total, offsets[b.path] + b.stop)
    return offsets


# ---------------------------------------------------------------------------------------------------- scoring


def _shard_name(block: Block) -> str:
    return f"part-{block.index:06d}.parquet"


def _score_block(det: Any, block: Block, output: str, feature_column: str | None) -> dict[str, Any]:
    """Score one block and write its Parquet shard; returns a summary row."""
    from .io import _pyarrow

    pa = _pyarrow()
    X, _ = read_block(block, feature_column=feature_column)
    scores = det.score_samples(X)
    decision = scores - det.offset_
    table = pa.table(
        {
            "source": pa.array([block.path] * block.rows, type=pa.string()),
            "row": np.arange(block.start, block.stop, dtype=np.int64),
            "score": scores,
            "decision": decision,
            "verdict": np.where(decision >= 0, "known", "unfamiliar"),
        }
    )
    final = Path(output) / _shard_name(block)
    tmp = final.with_name(final.name + ".tmp")
    pa.parquet.write_table(table, tmp)
    os.replace(tmp, final)  # a shard exists only when complete, so a re-run can skip it
    return {
        "index": block.index,
        "rows": block.rows,
        "unfamiliar": int((decision < 0).sum()),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux ``VmHWM``; 0 where unknown)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class _RayScorer:
    """Ray actor: loads the detector once, then scores the blocks it is handed."""

    def __init__(self, model_bytes: bytes, output: str, feature_column: str | None):
        self.det = _load_bytes(model_bytes)
        self.output, self.feature_column = output, feature_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [
            _score_block(self.det, _block_from(batch, i), self.output, self.feature_column)
            for i in range(len(batch["index"]))
        ]
        return {k: np.array([r[k] for r in rows]) for k in ("index", "rows", "unfamiliar", "peak_rss_mb")}


def _load_bytes(blob: bytes) -> Any:
    from .persistence import load

    with tempfile.TemporaryDirectory(prefix="unseen-actor-") as tmp:
        path = Path(tmp) / "model.unseen"
        path.write_bytes(blob)
        return load(path)


def _block_rows(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [
        {
            "index": b.index,
            "path": b.path,
            "start": b.start,
            "stop": b.stop,
            "row_groups": ",".join(map(str, b.row_groups)),
        }
        for b in blocks
    ]


def _block_from(batch: dict[str, np.ndarray], i: int) -> Block:
    groups = str(batch["row_groups"][i])
    return Block(
        int(batch["index"][i]),
        str(batch["path"][i]),
        int(batch["start"][i]),
        int(batch["stop"][i]),
        tuple(int(g) for g in groups.split(",")) if groups else (),
    )


def _model_bytes(model: Any) -> tuple[Any, bytes]:
    """The detector and its saved bytes, from a path or a fitted detector."""
    from .persistence import load, save

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        det = load(path)
        if path.is_file():
            return det, path.read_bytes()
        model = det
    with tempfile.TemporaryDirectory(prefix="unseen-model-") as tmp:
        path = save(model, Path(tmp) / "model.unseen")
        return model, path.read_bytes()


def _ray(address: str | None, num_cpus: int | None = None) -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError('engine="ray" needs Ray Data: pip install "unseen[ray]"') from exc
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = _tty()
    return ray


def _tty() -> bool:
    from ._progress import enabled

    return enabled()


def _actors(ray: Any, num_actors: int | None, n_blocks: int) -> int:
    if num_actors is not None:
        if num_actors < 1:
            raise InputError(f"unseen.scale: num_actors must be at least 1, got {num_actors}.")
        return min(num_actors, n_blocks)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cpus, n_blocks))


def score_files(
    model: Any,
    inputs: Any,
    output: str | Path,
    *,
    engine: str = "local",
    address: str | None = None,
    num_actors: int | None = None,
    block_rows: int | None = None,
    feature_column: str | None = None,
    overwrite: bool = False,
) -> ScoreReport:
    """Score Parquet / ``.npy`` shards with a saved detector; write the scores as Parquet shards.

    Parameters
    ----------
    model : path or Detector
        A saved detector (``unseen fit -o knn.unseen``, ``det.save(...)``) or a fitted one.
    inputs : path, glob or list
        A directory (its ``.parquet`` and ``.npy`` files, sorted), a glob (``"feats/*.parquet"``), a file, or
        a list of these. Parquet: every numeric column is a feature, or one list column holds the embedding
        (pick it with ``feature_column``).
    output : path
        A directory; one shard ``part-NNNNNN.parquet`` per block of input rows (columns ``source``, ``row``,
        ``score``, ``decision``, ``verdict``). Shards already there are kept and skipped unless ``overwrite``.
    engine : {"local", "ray"}
        In this process, or through ``ray.data`` with an actor pool (one detector per actor).
    address : str, optional
        A Ray cluster to join (``"auto"``, ``"ray://host:10001"``); default: start Ray locally.
    num_actors : int, optional
        Actors (default: one per CPU of the Ray cluster, at most one per block).
    block_rows : int, optional
        Rows per block (default: 128 MB of float32 features; Parquet blocks follow row groups).

    Returns
    -------
    ScoreReport

    Examples
    --------
    >>> report = score_files("knn.unseen", "feats/", "scores/", engine="ray")  # doctest: +SKIP
    >>> report.rows_per_s  # doctest: +SKIP
    """
    from ._progress import progress

    if engine not in ENGINES:
        raise InputError(f"unseen.scale: engine must be one of {ENGINES}, got {engine!r}.")
    t0 = time.perf_counter()
    blocks = blocks_of(inputs, block_rows=block_rows)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    todo = [b for b in blocks if overwrite or not (out / _shard_name(b)).is_file()]
    det, blob = _model_bytes(model)
    rows: list[dict[str, Any]] = []
    if engine == "local":
        bar = progress(total=sum(b.rows for b in todo), desc="scoring", unit="rows")
        for b in todo:
            rows.append(_score_block(det, b, str(out), feature_column))
            bar.update(b.rows)
        bar.close()
    elif todo:
        ray = _ray(address)
        ds = ray.data.from_items(_block_rows(todo), override_num_blocks=len(todo))
        ds = ds.map_batches(
            _RayScorer,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=_actors(ray, num_actors, len(todo))),
            fn_constructor_kwargs={"model_bytes": blob, "output": str(out.resolve()), "feature_column": feature_column},
            num_cpus=1,
        )
        rows = ds.take_all()
    return ScoreReport(
        rows=int(sum(int(r["rows"]) for r in rows)),
        shards=len(blocks),
        skipped=len(blocks) - len(todo),
        unfamiliar=int(sum(int(r["unfamiliar"]) for r in rows)),
        output=out,
        engine=engine,
        seconds=time.perf_counter() - t0,
        peak_rss_mb=max([float(r["peak_rss_mb"]) for r in rows], default=0.0),
    )


def read_scores(output: str | Path) -> dict[str, np.ndarray]:
    """The score shards of :func:`score_files` as columns, in input order.

    Examples
    --------
    >>> cols = read_scores("scores/"); cols["score"][:3]  # doctest: +SKIP
    """
    from .io import _pyarrow

    pa = _pyarrow()
    parts = sorted(Path(output).glob("part-*.parquet"))
    if not parts:
        raise InputError(f"unseen.scale: {output} holds no score shards (part-*.parquet).")
    table = pa.concat_tables([pa.parquet.read_table(p) for p in parts])
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


# ---------------------------------------------------------------------------------------------------- fitting


def _classes_of(blocks, labels, label_column, offsets, run) -> np.ndarray | None:
    if labels is None and label_column is None:
        return None
    if label_column is None:
        return np.unique(np.asarray(labels))
    parts = run("labels", blocks)
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _map_block(det: Any, kind: str, block: Block, ctx: dict[str, Any]) -> Any:
    """The map step for one block: labels present, moments, or ViM's second pass."""
    X, y = read_block(block, feature_column=ctx.get("feature_column"), label_column=ctx.get("label_column"))
    if y is None and ctx.get("labels") is not None:
        y = _labels_for(block, ctx["labels"], ctx["offsets"])
    if kind == "labels":
        return np.unique(np.asarray(y))
    from ._stats import ClassMoments
    from ._validation import as_float_array, check_labels

    X = as_float_array(
        X,
        owner=type(det).__name__,
        what=f"rows {block.start}:{block.stop} of {block.path}",
        n_features=ctx["n_features"],
    )
    if kind == "moments":
        classes = ctx["classes"]
        if classes is None:
            return ClassMoments.block(X, None, 1, device=det._torch_device())
        y = check_labels(y, X.shape[0], owner=type(det).__name__)
        pos = np.searchsorted(classes, y)
        return ClassMoments.block(X, pos, classes.shape[0], device=det._torch_device())
    sample = ctx["sample"]
    offset = ctx["offsets"][block.path] + block.start
    lo, hi = np.searchsorted(sample, [offset, offset + block.rows])
    return det._second_pass(X, sample[lo:hi] - offset)


def _pack(result: Any) -> bytes:
    """A map result (arrays and numbers) as ``.npz`` bytes (no pickle), to travel back from an actor."""
    import io as _io

    items = result if isinstance(result, tuple) else (result,)
    buf = _io.BytesIO()
    np.savez(buf, *[np.asarray(v) for v in items])
    return buf.getvalue()


def _unpack(blob: bytes) -> Any:
    import io as _io

    with np.load(_io.BytesIO(blob), allow_pickle=False) as npz:
        items = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    return items[0] if len(items) == 1 else tuple(items)


class _RayMapper:
    """Ray actor: the detector (with its head and, for the second pass, its principal space) arrives once."""

    def __init__(self, detector: Any, kind: str, ctx: dict[str, Any]):
        self.det, self.kind, self.ctx = detector, kind, ctx

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [
            _pack(_map_block(self.det, self.kind, _block_from(batch, i), self.ctx)) for i in range(len(batch["index"]))
        ]
        return {"index": batch["index"], "result": np.array(out, dtype=object)}


def fit_files(
    detector: Any,
    inputs: Any,
    *,
    labels: Any = None,
    label_column: str | None = None,
    head: tuple[Any, Any] | None = None,
    engine: str = "local",
    address: str | None = None,
    num_actors: int | None = None,
    block_rows: int | None = None,
    feature_column: str | None = None,
) -> tuple[Any, FitReport]:
    """Fit a mergeable detector on Parquet / ``.npy`` shards as a map over blocks and a combine of moments.

    Each block's per-class counts, means and centred scatter are computed where the block is read (a Ray
    actor, or this process), and merged on the driver in block order (Chan et al.'s update); ViM reads the
    blocks a second time for ``alpha``. The threshold sample is the same uniform sample of 20,000 rows that
    ``det.fit`` draws. The result equals ``detector.fit(list_of_blocks, labels, head=head)`` exactly, on
    either engine.

    Parameters
    ----------
    detector : Detector
        An unfitted (or fitted: it is refitted) detector whose class has ``mergeable = True``.
    inputs : path, glob or list
        As :func:`score_files`.
    labels : array-like, optional
        One label per row of the concatenated inputs (in file order), for detectors that need them.
    label_column : str, optional
        Or: the Parquet column holding each row's label.
    head : (W, b), optional
        The classifier head, for detectors that take one (ViM, Residual).

    Returns
    -------
    (detector, FitReport)

    Examples
    --------
    >>> det, report = fit_files(unseen.Mahalanobis(), "train/", label_column="label", engine="ray")  # doctest: +SKIP
    """
    from ._progress import progress
    from ._validation import Reservoir, as_float_array, check_param
    from .base import THRESHOLD_SAMPLE

    owner = type(detector).__name__
    if not getattr(type(detector), "mergeable", False):
        raise InputError(
            f"unseen.scale.fit_files: {owner} does not fit from mergeable moments; fit it in one process "
            "(det.fit(path_or_blocks)) or use one of the mergeable detectors (cls.mergeable: Mahalanobis, "
            "RelativeMahalanobis, Gaussian, ViM, Residual, NECO)."
        )
    if engine not in ENGINES:
        raise InputError(f"unseen.scale: engine must be one of {ENGINES}, got {engine!r}.")
    if labels is not None and label_column is not None:
        raise InputError("unseen.scale.fit_files: pass labels= or label_column=, not both.")
    t0 = time.perf_counter()
    blocks = blocks_of(inputs, block_rows=block_rows)
    offsets = _file_offsets(blocks)
    n_rows = sum(b.rows for b in blocks)
    if labels is not None and np.shape(labels)[0] != n_rows:
        raise InputError(f"unseen.scale.fit_files: {np.shape(labels)[0]} labels for {n_rows} rows.")
    if detector.requires_labels and labels is None and label_column is None:
        raise InputError(f"{owner} needs class labels: pass labels= (one per row) or label_column= (Parquet).")

    # The same bookkeeping as Detector.fit, on the driver.
    check_param(detector.tpr, "tpr", owner=owner, low=0.0, high=1.0, low_inclusive=False)
    if "device" in detector._param_names():
        from .backend import check_device

        check_device(detector.device, owner)
    detector._check_params()
    detector._reset()
    first, _ = read_block(
        Block(0, blocks[0].path, blocks[0].start, min(blocks[0].stop, blocks[0].start + 1), blocks[0].row_groups),
        feature_column=feature_column,
    )
    first = as_float_array(first, owner=owner)
    detector.n_features_in_ = int(first.shape[1])
    detector._set_head(head)
    ctx: dict[str, Any] = {
        "feature_column": feature_column,
        "label_column": label_column,
        "offsets": offsets,
        "labels": None if labels is None else np.asarray(labels),
        "n_features": detector.n_features_in_,
    }

    def run(kind: str, todo: Sequence[Block]) -> list[Any]:
        if engine == "local":
            bar = progress(total=sum(b.rows for b in todo), desc=f"fit ({kind})", unit="rows")
            out = []
            for b in todo:
                out.append(_unpack(_pack(_map_block(detector, kind, b, ctx))))  # the same values as from an actor
                bar.update(b.rows)
            bar.close()
            return out
        ray = _ray(address)
        ds = ray.data.from_items(_block_rows(todo), override_num_blocks=len(todo))
        ds = ds.map_batches(
            _RayMapper,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=_actors(ray, num_actors, len(todo))),
            fn_constructor_kwargs={"detector": detector, "kind": kind, "ctx": ctx},
            num_cpus=1,
        )
        got = {int(r["index"]): r["result"] for r in ds.iter_rows()}
        return [_unpack(got[b.index]) for b in todo]

    classes = _classes_of(blocks, labels, label_column, offsets, run)
    ctx["classes"] = classes
    from ._stats import ClassMoments

    moments = ClassMoments(detector.n_features_in_, 1 if classes is None else classes.shape[0])
    for part in run("moments", blocks):  # combine, in block order
        moments.merge(*part)
    if classes is None:
        classes = np.zeros(1, dtype=np.int64)
    detector._fit_moments(classes, moments)

    # The threshold sample: the rows Detector.fit's reservoir keeps (keys drawn in row order, block by block).
    reservoir = Reservoir(THRESHOLD_SAMPLE)
    for b in blocks:  # rows of width 0: the reservoir draws the same keys and keeps only row numbers
        reservoir.add(offsets[b.path] + b.start, np.empty((b.rows, 0)))
    sample = reservoir.index
    ctx["sample"] = sample
    if hasattr(detector, "_second_pass"):
        parts = run("second", blocks)
        sums = [(int(p[0]), float(p[1]), float(p[2])) for p in parts]
        detector._finish_second_pass(sums, [p[3] for p in parts], [p[4] for p in parts])
    scores = detector.__dict__.pop("_threshold_scores", None)
    if scores is None:
        scores = detector._score_fit_sample(_gather_rows(blocks, sample, offsets, feature_column))
    detector.offset_ = detector._threshold(scores)
    return detector, FitReport(rows=n_rows, blocks=len(blocks), engine=engine, seconds=time.perf_counter() - t0)


def _gather_rows(
    blocks: Sequence[Block], rows: np.ndarray, offsets: dict[str, int], feature_column: str | None
) -> np.ndarray:
    """The given global row numbers (sorted) of the concatenated inputs, read block by block."""
    from ._validation import as_float_array

    parts = []
    for b in blocks:
        start = offsets[b.path] + b.start
        lo, hi = np.searchsorted(rows, [start, start + b.rows])
        if hi > lo:
            X, _ = read_block(b, feature_column=feature_column)
            parts.append(as_float_array(X[rows[lo:hi] - start], owner="unseen.scale"))
    return np.concatenate(parts)
