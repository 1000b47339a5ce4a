"""Tabular benchmarks from the R package mlbench (UCI Statlog Shuttle, Landsat Satellite, Letter Recognition).

Data: the Debian package ``r-cran-mlbench`` (GPL-2; the data are the UCI Statlog sets), read from its
``.rda`` files with ``pyreadr`` (no R needed). ``scripts/install-data.sh`` (``make data``) extracts the
package into ``~/.cache/unseen/data/r-cran-mlbench`` (or ``$UNSEEN_DATA_DIR``); an ``apt-get install
r-cran-mlbench`` works too. Representation ``"raw"``: the attributes z-scored with the mean and
standard deviation of the ID training rows only.

Shuttle — novelty detection (58,000 rows, 9 attributes, 7 classes)
    ID = the majority class ``Rad.Flow`` (45,586 rows; 78.6 %); train 5,000 [400], val 1,000 [100],
    test 2,000 [200] rows (``size="small"`` in brackets). OOD (all ``far``): ``far: High`` and
    ``far: Bypass`` (1,000 [100] rows each) and ``far: rare valve states`` — the 244 rows of Fpv.Close,
    Fpv.Open, Bpv.Close, Bpv.Open [100 of them]. This is the source of the ODDS ``shuttle`` set (which
    keeps classes 2, 3, 5, 6, 7 as outliers). One known class: no classifier head.

Satellite — open-set classification (6,435 rows, 36 attributes, 6 classes)
    Seed 0 holds out ``cotton crop`` and ``damp grey soil`` (the latter lies between the known grey soil
    and very damp grey soil: a genuinely near set); any other seed holds out two classes at random. The
    known classes' rows are split 60 / 20 / 20 % into train / val / test per class [100 / 25 / 50 rows per
    class]; ``near: held-out classes``: 1,000 [100] rows of the held-out classes in equal shares. The head
    is a logistic-regression probe on the known classes.

Letter — open-set classification (20,000 rows, 16 integer attributes of letter images, 26 classes)
    Every seed draws 16 known letters and holds out the other 10 (its own random stream; seed 0 included).
    Per known letter: train 300 [40], val 100 [10], test 150 [20] rows; ``near: held-out letters``: 1,500
    [100] rows of the held-out letters in equal shares. The head is a logistic-regression probe on the
    known letters (about 80 % accurate: letters are hard for a linear model on these attributes).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..exceptions import MissingDependencyError
from ._base import MissingDataError, OpenSetData
from ._util import rng_for, sample_mixed, sample_per_class, standardise
from .classifier import linear_probe

__all__ = [
    "data_dirs",
    "find_data_dir",
    "letter_known",
    "letter_rows",
    "load_letter",
    "load_satellite",
    "load_shuttle",
    "read_table",
    "satellite_rows",
    "shuttle_rows",
]

REPRESENTATIONS = ("raw",)
R_DATA = Path("usr/lib/R/site-library/mlbench/data")
INSTALL_HINT = (
    'The mlbench data (UCI Shuttle and Satellite) is not installed: run "make data" (or '
    '"bash scripts/install-data.sh"), which runs "apt-get download r-cran-mlbench" and extracts it with '
    '"dpkg -x r-cran-mlbench_*.deb ~/.cache/unseen/data/r-cran-mlbench"; or "sudo apt-get install -y '
    'r-cran-mlbench".'
)
SHUTTLE_SIZES = {
    "default": {"train": 5000, "val": 1000, "test": 2000, "ood": 1000},
    "small": {"train": 400, "val": 100, "test": 200, "ood": 100},
}
SATELLITE_SIZES = {"small": {"train": 100, "val": 25, "test": 50, "ood": 100}, "default": {"ood": 1000}}
SATELLITE_SEED0_HELD_OUT = ("cotton crop", "damp grey soil")
RARE_VALVES = ("Fpv.Close", "Fpv.Open", "Bpv.Close", "Bpv.Open")
LETTER_SIZES = {
    "default": {"train": 300, "val": 100, "test": 150, "ood": 1500},
    "small": {"train": 40, "val": 10, "test": 20, "ood": 100},
}
LETTER_KNOWN = 16
#: The column holding the class, when it is not the last one.
LABEL_COLUMNS = {"LetterRecognition": "lettr"}


def data_dirs() -> list[Path]:
    """Folders searched for ``Shuttle.rda`` / ``Satellite.rda``, in order."""
    roots = []
    if os.environ.get("UNSEEN_DATA_DIR"):
        roots.append(Path(os.environ["UNSEEN_DATA_DIR"]).expanduser())
    roots.append(Path.home() / ".cache" / "unseen" / "data")
    dirs = []
    for r in roots:
        dirs += [r / "r-cran-mlbench" / R_DATA, r / R_DATA, r]
    dirs.append(Path("/") / R_DATA)
    return dirs


def find_data_dir(name: str = "Shuttle") -> Path:
    """The first folder of :func:`data_dirs` that holds ``{name}.rda``, or :class:`MissingDataError`."""
    for d in data_dirs():
        if (d / f"{name}.rda").is_file():
            return d
    looked = ", ".join(str(d) for d in data_dirs())
    raise MissingDataError(f"{INSTALL_HINT} (looked for {name}.rda in: {looked})")


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, label: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        import pyreadr
    except ImportError as e:
        raise MissingDependencyError(
            f"Reading the mlbench data needs pyreadr and pandas ({e}): run \"pip install 'unseen[tabular]'\" "
            '(or "pip install pyreadr pandas").'
        ) from e
    frames = pyreadr.read_r(path)
    if len(frames) != 1:
        raise MissingDataError(f"{path} should hold one data frame, found {list(frames)}. {INSTALL_HINT}")
    df = next(iter(frames.values()))
    label_col = label if label is not None else df.columns[-1]
    cat = df[label_col].astype("category")
    X = df.drop(columns=[label_col]).to_numpy(dtype=np.float64)
    y = cat.cat.codes.to_numpy().astype(np.int64)
    X.setflags(write=False)  # shared by every caller through the cache
    y.setflags(write=False)
    return X, y, tuple(str(c) for c in cat.cat.categories)


def read_table(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, class_names)`` of ``"Shuttle"``, ``"Satellite"`` or ``"LetterRecognition"`` (class codes follow
    the R factor levels).

    The arrays are read-only (they are shared through an in-process cache).
    """
    X, y, names = _read_cached(str(find_data_dir(name) / f"{name}.rda"), LABEL_COLUMNS.get(name))
    return X, y, list(names)


def shuttle_rows(y: np.ndarray, names: list[str], seed: int, size: str) -> dict[str, np.ndarray]:
    """Row indices of each Shuttle set (``train``, ``val``, ``test`` and the OOD set names)."""
    n = SHUTTLE_SIZES[size]
    code = {c: i for i, c in enumerate(names)}
    used = np.zeros(len(y), bool)
    rows = {}
    for part in ("train", "val", "test"):
        rows[part] = sample_per_class(y, (code["Rad.Flow"],), n[part], rng_for(seed, "shuttle", part), exclude=used)
        used[rows[part]] = True
    for c in ("High", "Bypass"):
        rows[f"far: {c}"] = sample_mixed(y, (code[c],), n["ood"], rng_for(seed, "shuttle", c))
    rare = np.flatnonzero(np.isin(y, [code[c] for c in RARE_VALVES]))
    k = len(rare) if size == "default" else min(n["ood"], len(rare))
    rows["far: rare valve states"] = np.sort(rng_for(seed, "shuttle", "rare").choice(rare, size=k, replace=False))
    return rows


def load_shuttle(
    *,
    representation: str = "raw",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenSetData:
    """Build the Shuttle novelty benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    X, y, names = read_table("Shuttle")
    rows = shuttle_rows(y, names, seed, size)
    ood_names = [k for k in rows if k.startswith("far: ")]
    tr, va, te, *oo = standardise(*(X[rows[k]] for k in ("train", "val", "test", *ood_names)))

    def zeros(m: int) -> np.ndarray:
        return np.zeros(m, dtype=np.int64)

    return OpenSetData(
        name="shuttle",
        representation=representation,
        seed=seed,
        X_train=tr,
        y_train=zeros(len(tr)),
        X_val=va,
        y_val=zeros(len(va)),
        X_test=te,
        y_test=zeros(len(te)),
        ood=dict(zip(ood_names, oo)),
        ood_kind={k: "far" for k in ood_names},
        head=None,
        class_names=["Rad.Flow"],
        description=(
            f"UCI Statlog Shuttle novelty detection (seed {seed}, {size}): in-distribution = the majority "
            "state Rad.Flow; OOD = the High and Bypass states and the rare valve states (Fpv/Bpv). "
            "Representation: the 9 attributes standardised on the training rows; no classifier head."
        ),
    )


def satellite_held_out(seed: int, names: list[str]) -> tuple[str, ...]:
    """The two held-out Satellite classes of a seed."""
    if seed == 0:
        return SATELLITE_SEED0_HELD_OUT
    pick = rng_for(seed, "satellite", "held out").choice(len(names), size=2, replace=False)
    return tuple(names[i] for i in sorted(pick))


def satellite_rows(y: np.ndarray, names: list[str], seed: int, size: str) -> dict[str, np.ndarray]:
    """Row indices of each Satellite set (``train``, ``val``, ``test``, ``near: held-out classes``)."""
    held = satellite_held_out(seed, names)
    code = {c: i for i, c in enumerate(names)}
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in names:
        if c in held:
            continue
        rows = rng_for(seed, "satellite", "split", c).permutation(np.flatnonzero(y == code[c]))
        if size == "small":
            s = SATELLITE_SIZES["small"]
            cuts = np.cumsum([s["train"], s["val"], s["test"]])
        else:
            cuts = np.rint(np.array([0.6, 0.8, 1.0]) * len(rows)).astype(int)
        for part, rr in zip(parts, np.split(rows[: cuts[-1]], cuts[:-1])):
            parts[part].append(np.sort(rr))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["near: held-out classes"] = sample_mixed(
        y, [code[c] for c in held], SATELLITE_SIZES[size]["ood"], rng_for(seed, "satellite", "near")
    )
    return out


def _known_class_sets(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    known: Sequence[str],
    rows: dict[str, np.ndarray],
    near: str,
    cache_dir: str | os.PathLike | None,
    probe_label: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Train/val/test/near features standardised on the training rows, the known classes' labels renumbered
    ``0..C-1`` in the order of ``known``, and a logistic-regression probe on the training rows."""
    code = {c: i for i, c in enumerate(names)}
    remap = {code[c]: i for i, c in enumerate(known)}
    labels = {k: np.array([remap[int(v)] for v in y[rows[k]]], dtype=np.int64) for k in ("train", "val", "test")}
    tr, va, te, nr = standardise(*(X[rows[k]] for k in ("train", "val", "test", near)))
    head = linear_probe(tr, labels["train"], va, labels["val"], cache_dir=cache_dir, label=probe_label)
    return tr, va, te, nr, labels, head


def load_satellite(
    *,
    representation: str = "raw",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenSetData:
    """Build the Satellite open-set benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    X, y, names = read_table("Satellite")
    held = satellite_held_out(seed, names)
    known = [c for c in names if c not in held]
    rows = satellite_rows(y, names, seed, size)
    tr, va, te, nr, labels, head = _known_class_sets(
        X,
        y,
        names,
        known,
        rows,
        "near: held-out classes",
        cache_dir,
        f"satellite/probe-{representation}-{size}-seed{seed}",
    )
    return OpenSetData(
        name="satellite",
        representation=representation,
        seed=seed,
        X_train=tr,
        y_train=labels["train"],
        X_val=va,
        y_val=labels["val"],
        X_test=te,
        y_test=labels["test"],
        ood={"near: held-out classes": nr},
        ood_kind={"near: held-out classes": "near"},
        head=head,
        class_names=known,
        description=(
            f"UCI Statlog (Landsat) Satellite open-set (seed {seed}, {size}): known {', '.join(known)}; "
            f"held-out {', '.join(held)} (near-OOD). Representation: the 36 spectral attributes "
            "standardised on the training rows, with a logistic-regression probe."
        ),
    )


def letter_known(seed: int, names: list[str]) -> tuple[str, ...]:
    """The 16 known letters of a seed (the other 10 are held out)."""
    pick = rng_for(seed, "letter", "known").choice(len(names), size=LETTER_KNOWN, replace=False)
    return tuple(names[i] for i in sorted(pick))


def letter_rows(y: np.ndarray, names: list[str], seed: int, size: str) -> dict[str, np.ndarray]:
    """Row indices of each Letter set (``train``, ``val``, ``test``, ``near: held-out letters``)."""
    n = LETTER_SIZES[size]
    code = {c: i for i, c in enumerate(names)}
    known = [code[c] for c in letter_known(seed, names)]
    used = np.zeros(len(y), bool)
    rows = {}
    for part in ("train", "val", "test"):
        rows[part] = sample_per_class(y, known, n[part], rng_for(seed, "letter", part), exclude=used)
        used[rows[part]] = True
    held = [c for c in range(len(names)) if c not in known]
    rows["near: held-out letters"] = sample_mixed(y, held, n["ood"], rng_for(seed, "letter", "near"))
    return rows


def load_letter(
    *,
    representation: str = "raw",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenSetData:
    """Build the Letter open-set benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    X, y, names = read_table("LetterRecognition")
    known = letter_known(seed, names)
    rows = letter_rows(y, names, seed, size)
    tr, va, te, nr, labels, head = _known_class_sets(
        X,
        y,
        names,
        known,
        rows,
        "near: held-out letters",
        cache_dir,
        f"letter/probe-{representation}-{size}-seed{seed}",
    )
    held = [c for c in names if c not in known]
    return OpenSetData(
        name="letter",
        representation=representation,
        seed=seed,
        X_train=tr,
        y_train=labels["train"],
        X_val=va,
        y_val=labels["val"],
        X_test=te,
        y_test=labels["test"],
        ood={"near: held-out letters": nr},
        ood_kind={"near: held-out letters": "near"},
        head=head,
        class_names=list(known),
        description=(
            f"UCI Letter Recognition open-set (seed {seed}, {size}): known letters {''.join(known)}; held-out "
            f"{''.join(held)} (near-OOD). Representation: the 16 attributes standardised on the training rows, "
            "with a logistic-regression probe."
        ),
    )
