#!/usr/bin/env python
"""Speed and memory benchmark: unseen against pytorch-ood 0.4.0 and PyOD on the same synthetic features.

A script, not a test: it times, it does not assert. Every measurement (one detector of one library on one
data configuration) runs in a fresh child process (this script with ``--one``), so its peak resident memory
(``VmHWM``; see ``_maxrss_mb`` for why not ``ru_maxrss``) belongs to that measurement alone, and a per-measurement wall-clock
limit (``--timeout``) turns a peer that would run for an hour into "> limit" instead of a hang.

Measured for each detector: fit wall time, scoring wall time for ID test + OOD rows (one call), scoring
throughput, peak RSS (and RSS after imports / after loading the data), and AUROC (ID test vs OOD), so that a
faster method is not faster because it computes something else. For unseen's approximate KNN (IVF at a few
``nprobe``) also the AUROC difference to exact KNN and the measured ``recall_``. Finally a streaming fit of
unseen.Mahalanobis from a ``.npy`` file on disk (written here in blocks, reused on later runs).

Usage (see benchmarks/README.md)::

    python benchmarks/bench_speed.py --scale small          # smoke run, about a minute
    python benchmarks/bench_speed.py --scale full           # the real benchmark (about 1 to 1.5 hours on 2 cores)

Outputs ``benchmarks/results.md`` and ``benchmarks/results.json`` for ``--scale full``
(``results_small.*`` for ``--scale small``, so a smoke run never overwrites the full numbers).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATOR_VERSION = 2  # bump when the data recipe changes, so cached data is rewritten

# (N_train, N_test, D, C); the OOD set has N_test rows too.
SCALES = {
    "small": [{"name": "small", "n_train": 5_000, "n_test": 1_000, "dim": 64, "classes": 10}],
    "medium": [{"name": "medium", "n_train": 50_000, "n_test": 5_000, "dim": 512, "classes": 100}],
    "full": [
        {"name": "A", "n_train": 200_000, "n_test": 20_000, "dim": 512, "classes": 100},
        {"name": "B", "n_train": 20_000, "n_test": 5_000, "dim": 2048, "classes": 1000},
        # The exact-KNN shapes of issue 14: a 50k bank and 5k queries, the same on a busy machine (other
        # processes keep the cores loaded), and 200k queries against a 10k bank.
        {"name": "K1", "n_train": 50_000, "n_test": 2_500, "dim": 512, "classes": 100, "methods": ["knn"]},
        {
            "name": "K1-busy",
            "n_train": 50_000,
            "n_test": 2_500,
            "dim": 512,
            "classes": 100,
            "methods": ["knn"],
            "busy": 5,
        },
        {"name": "K2", "n_train": 10_000, "n_test": 100_000, "dim": 512, "classes": 100, "methods": ["knn"]},
    ],
}
STREAM_DEFAULTS = {
    "small": {"rows": 50_000, "dim": 512, "classes": 100},
    "medium": {"rows": 200_000, "dim": 2048, "classes": 1000},
    "full": {"rows": 1_000_000, "dim": 2048, "classes": 1000},
}
METHODS = ("knn", "mahalanobis", "vim", "energy")
LIBRARIES = ("unseen", "pytorch-ood", "pyod")
# Targets checked at the end (printed as MET / MISSED).
KNN_TARGET, KNN_EXACT_TARGET, GAUSS_TARGET, STREAM_RSS_TARGET_MB, AUROC_TOL = 5.0, 2.0, 2.0, 2048.0, 0.002


# ================================================================================================ data


def _centers(rng, m: int, dim: int):
    """Sparse non-negative prototypes: Gamma(2, 1) values on a random half of the coordinates."""
    import numpy as np

    return (rng.gamma(2.0, 1.0, size=(m, dim)) * (rng.random((m, dim)) < 0.5)).astype(np.float32)


def _class_centers(rng, n_classes: int, dim: int):
    """Class prototypes in groups of ~10 (a shared group prototype, 25 % of coordinates class-specific).

    The grouping keeps k = 50 nearest neighbours meaningful when a class has fewer than 50 fit rows
    (config B: 20 rows per class), as superclasses do in real label sets.
    """
    import numpy as np

    n_groups = max(1, n_classes // 10)
    groups = _centers(rng, n_groups, dim)
    own = rng.random((n_classes, dim)) < 0.25
    return np.where(own, _centers(rng, n_classes, dim), groups[np.arange(n_classes) % n_groups])


def _draw_id(rng, centers, m: int, out=None, block: int = 25_000):
    """ID features ``|mu_y + N(0, 1)|`` (non-negative like post-ReLU features), float32, drawn in blocks."""
    import numpy as np

    n_classes, dim = centers.shape
    y = rng.integers(0, n_classes, m).astype(np.int64)
    X = np.empty((m, dim), dtype=np.float32) if out is None else out
    for s in range(0, m, block):
        e = min(m, s + block)
        Xb = centers[y[s:e]] + rng.standard_normal((e - s, dim), dtype=np.float32)
        np.abs(Xb, out=Xb)
        X[s:e] = Xb
    return X, y


def _draw_ood(rng, centers, m: int):
    """OOD features: an ID prototype with a random fraction t ~ U(0, 1) of its coordinates replaced by a new
    prototype's, plus the same noise. Same marginal statistics (sparsity, scale) as ID data, so neither the
    norm nor the density of a vector gives it away; t near 0 is near-OOD, t near 1 is far-OOD."""
    import numpy as np

    n_classes, dim = centers.shape
    anchor = rng.integers(0, n_classes, m)
    t = rng.random(m)[:, None]
    swap = rng.random((m, dim)) < t
    proto = np.where(swap, _centers(rng, m, dim), centers[anchor])
    X = proto + rng.standard_normal((m, dim), dtype=np.float32)
    return np.abs(X, out=X)


def _head(X, y, n_classes: int):
    """A linear head like a trained one: class means as weights (half-centred, scaled), small biases.

    Half-centring keeps W full rank: with fully centred means W has rank C - 1 and, in float32, a singular
    value of ~1e-8 instead of 0, which would send ViM's origin ``u = -pinv(W) b`` to ~1e7."""
    import numpy as np
    import scipy.sparse as sp

    dim = X.shape[1]
    onehot = sp.csr_matrix((np.ones(y.shape[0]), (y, np.arange(y.shape[0]))), shape=(n_classes, y.shape[0]))
    counts = np.maximum(np.bincount(y, minlength=n_classes), 1)
    mu = np.asarray(onehot @ X.astype(np.float64)) / counts[:, None]
    W = (mu - 0.5 * mu.mean(0)) / math.sqrt(dim)
    b = -0.05 * (W * mu).sum(1)
    return W.astype(np.float32), b.astype(np.float32)


def _meta_ok(directory: Path, meta: dict) -> bool:
    path = directory / "meta.json"
    try:
        return json.loads(path.read_text()) == meta
    except (OSError, ValueError):
        return False


def ensure_config_data(cfg: dict, data_dir: Path, seed: int) -> Path:
    """Write (or reuse) the seeded data of one configuration; return its directory."""
    import numpy as np

    n, m, dim, c = cfg["n_train"], cfg["n_test"], cfg["dim"], cfg["classes"]
    directory = data_dir / f"features_n{n}_t{m}_d{dim}_c{c}_s{seed}"
    meta = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "n_train": n,
        "n_test": m,
        "n_ood": m,
        "dim": dim,
        "classes": c,
    }
    if _meta_ok(directory, meta):
        return directory
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    rng = np.random.default_rng([seed, n, m, dim, c])
    centers = _class_centers(rng, c, dim)
    X, y = _draw_id(rng, centers, n)
    X_test, y_test = _draw_id(rng, centers, m)
    X_ood = _draw_ood(rng, centers, m)
    W, b = _head(X, y, c)
    for name, arr in [
        ("X_train", X),
        ("y_train", y),
        ("X_test", X_test),
        ("y_test", y_test),
        ("X_ood", X_ood),
        ("W", W),
        ("b", b),
    ]:
        np.save(directory / f"{name}.npy", arr)
    (directory / "meta.json").write_text(json.dumps(meta))
    print(f"  wrote {directory} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return directory


def ensure_stream_data(rows: int, dim: int, classes: int, data_dir: Path, seed: int, block: int = 20_000) -> Path:
    """Write (or reuse) a rows x dim float32 .npy in blocks with plain writes (bounded memory), labels beside it."""
    import numpy as np

    directory = data_dir / f"stream_n{rows}_d{dim}_c{classes}_s{seed}"
    meta = {"generator": GENERATOR_VERSION, "seed": seed, "rows": rows, "dim": dim, "classes": classes}
    if _meta_ok(directory, meta) and (directory / "X.npy").is_file():
        return directory
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    rng = np.random.default_rng([seed, rows, dim, classes, 7])
    centers = _class_centers(rng, classes, dim)
    labels = np.empty(rows, dtype=np.int32)
    tmp = directory / "X.npy.part"
    with open(tmp, "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (rows, dim)}
        )
        for s in range(0, rows, block):
            e = min(rows, s + block)
            Xb, yb = _draw_id(rng, centers, e - s)
            labels[s:e] = yb
            fh.write(Xb.tobytes())
    os.replace(tmp, directory / "X.npy")
    np.save(directory / "y.npy", labels)
    (directory / "meta.json").write_text(json.dumps(meta))
    gb = rows * dim * 4 / 2**30
    print(
        f"  wrote {directory / 'X.npy'} ({gb:.2f} GiB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True
    )
    return directory


# ================================================================================================ child


def _ru_maxrss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _maxrss_mb() -> float:
    """Peak resident memory of this process since it started, in MB.

    Linux's ``VmHWM`` (the high-water mark of this process's own address space). ``ru_maxrss`` would do on a
    fresh process, but Linux carries it over ``fork``/``exec`` from the parent, so a child of a parent that
    once held 1 GB reports at least 1 GB; ``VmHWM`` starts afresh at ``exec``. (The parent here also stays
    small: data is generated in a child process.) Falls back to ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _ru_maxrss_mb()


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return None


class _Recorder:
    """Writes the result dict to disk after every step, so a killed child still reports what it finished."""

    def __init__(self, path: str, spec: dict):
        self.path = path
        self.res = {"status": "started"}
        self.save()

    def __setitem__(self, key, value):
        self.res[key] = value
        self.save()

    def update(self, **kw):
        self.res.update(kw)
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.res, fh)
        os.replace(tmp, self.path)


def _auroc(ood_scores, n_id: int) -> float:
    """AUROC with OOD as the positive class; ``ood_scores`` higher = more OOD."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(n_id), np.ones(ood_scores.shape[0] - n_id)]
    return float(roc_auc_score(y, ood_scores))


def _build(spec: dict, threads: int):
    """Import the library and return (fit(X, y, W, b), score(X) -> OOD-positive scores, extras())."""
    lib, method, params = spec["library"], spec["method"], dict(spec.get("params", {}))
    import numpy as np

    if lib == "unseen":
        sys.path.insert(0, str(ROOT / "src"))
        import unseen

        if method == "knn":
            # Through unseen, as a user's process would (unseen imports faiss with OpenMP threads that wait
            # passively); then limited to `threads` like every library here.
            from unseen.search import faiss_module

            faiss_module().omp_set_num_threads(threads)
            if params.get("device"):
                import torch

                torch.set_num_threads(threads)
        cls = {"knn": unseen.KNN, "mahalanobis": unseen.Mahalanobis, "vim": unseen.ViM, "energy": unseen.Energy}[method]
        box = {}

        def fit(X, y, W, b):
            box.clear()  # drop the previous repetition's detector before building the next
            det = cls(**params)
            if method == "knn":
                det.fit(X)
            elif method == "mahalanobis":
                det.fit(X, y)
            else:
                det.fit(X, head=(W, b))
            box["det"] = det

        def score(X):
            return -box["det"].score_samples(X)

        def extras():
            det = box.get("det")
            out = {}
            for name in ("recall_", "nlist_", "nprobe_"):
                if det is not None and hasattr(det, name):
                    out[name.rstrip("_")] = float(getattr(det, name))
            return out

        return fit, score, extras

    if lib == "pytorch-ood":
        sys.path.insert(0, str(HERE))
        import torch
        from _peers import pytorch_ood_detector

        torch.set_num_threads(threads)
        mod = pytorch_ood_detector()
        box = {}

        def fit(X, y, W, b):
            box.clear()
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
            if method == "knn":
                det = mod.KNN(None, k=params.get("k", 50))
                det.knn.n_jobs = threads  # pytorch-ood fixes n_jobs=-1 (all cores); keep every library on `threads`
                det.fit_features(Xt, yt)
            elif method == "mahalanobis":
                det = mod.Mahalanobis(None).fit_features(Xt, yt)
            elif method == "vim":
                det = mod.ViM(None, d=params["dim"], w=torch.from_numpy(W), b=torch.from_numpy(b))
                det.fit_features(Xt, yt)
            else:  # EnergyBased needs no fit; its "model" is the linear head, so it scores features as unseen does
                lin = torch.nn.Linear(W.shape[1], W.shape[0])
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(W))
                    lin.bias.copy_(torch.from_numpy(b))
                lin.requires_grad_(False)
                det = mod.EnergyBased(lin)
            box["det"] = det

        def score(X):
            with torch.no_grad():
                Xt = torch.from_numpy(X)
                det = box["det"]
                out = det.predict(Xt) if method == "energy" else det.predict_features(Xt)
            return out.detach().cpu().numpy().astype(np.float64)

        return fit, score, dict

    if lib == "pyod":
        sys.path.insert(0, str(HERE))
        from _peers import pyod_models

        PyodKNN, PyodMCD = pyod_models()
        box = {}

        def _normalise(X):
            # The deep-KNN method scores L2-normalised features; give PyOD the same representation (timed).
            n = np.linalg.norm(X, axis=1, keepdims=True)
            return X / np.maximum(n, 1e-12)

        def fit(X, y, W, b):
            box.clear()
            if method == "knn":
                det = PyodKNN(n_neighbors=params.get("k", 50), method="largest", n_jobs=threads)
                det.fit(_normalise(X))
            elif method == "mahalanobis":
                det = PyodMCD(random_state=0)
                det.fit(X)
            else:
                raise ValueError(f"PyOD has no {method}")
            box["det"] = det

        def score(X):
            Z = _normalise(X) if method == "knn" else X
            return np.asarray(box["det"].decision_function(Z), dtype=np.float64)

        return fit, score, dict

    raise ValueError(f"unknown library {lib}")


def run_one(spec: dict) -> None:
    """Child process: one measurement, results written incrementally to ``spec['result_path']``."""
    rec = _Recorder(spec["result_path"], spec)
    threads = int(spec["threads"])
    try:
        import numpy as np
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        import sklearn.metrics  # noqa: F401  (AUROC; imported up front so every child carries it)

        if spec["kind"] == "stream":
            _run_stream(spec, rec)
            return
        fit, score, extras = _build(spec, threads)
        rec["rss_imports_mb"] = _maxrss_mb()

        d = Path(spec["data"])
        X = np.load(d / "X_train.npy")
        y = np.load(d / "y_train.npy")
        W, b = np.load(d / "W.npy"), np.load(d / "b.npy")
        X_eval = np.concatenate([np.load(d / "X_test.npy"), np.load(d / "X_ood.npy")])
        n_id = int(np.load(d / "y_test.npy").shape[0])
        rec.update(rss_data_mb=_maxrss_mb(), n_eval=int(X_eval.shape[0]))

        repeat = max(1, int(spec.get("repeat", 1)))
        fit_times = []
        rec["phase"] = "fit"
        for _ in range(repeat):  # best of `repeat`: the minimum is the least disturbed by other load
            t0 = time.perf_counter()
            fit(X, y, W, b)
            fit_times.append(time.perf_counter() - t0)
            rec.update(fit_s=min(fit_times), fit_times=fit_times, rss_after_fit_mb=_maxrss_mb(), **extras())

        # A short probe first: warms up every library the same way, and gives a rate to extrapolate from
        # when the full scoring is cut off by the time limit.
        probe = X_eval[: min(int(spec["probe_rows"]), X_eval.shape[0])]
        rec["phase"] = "probe"
        t0 = time.perf_counter()
        score(probe)
        probe_s = time.perf_counter() - t0
        rec.update(probe_rows=int(probe.shape[0]), probe_s=probe_s, phase="score")

        score_times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            s = np.asarray(score(X_eval), dtype=np.float64)
            score_times.append(time.perf_counter() - t0)
            score_s = min(score_times)
            rec.update(
                score_s=score_s,
                score_times=score_times,
                throughput=X_eval.shape[0] / score_s if score_s > 0 else float("inf"),
            )
        rec.update(
            auroc=_auroc(s, n_id),
            peak_rss_mb=_maxrss_mb(),
            ru_maxrss_mb=_ru_maxrss_mb(),
            finite=bool(np.isfinite(s).all()),
            status="ok",
        )
    except BaseException as exc:  # report any failure (including MemoryError) as the measurement's result
        rec.update(status=f"error: {type(exc).__name__}: {str(exc)[:300]}", peak_rss_mb=_maxrss_mb())
        raise


def _run_stream(spec: dict, rec: _Recorder) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    import unseen

    det = unseen.Mahalanobis()
    rec["rss_imports_mb"] = _maxrss_mb()
    d = Path(spec["data"])
    y = np.load(d / "y.npy")
    rec["rss_data_mb"] = _maxrss_mb()  # labels only: the features stay on disk
    t0 = time.perf_counter()
    det.fit(str(d / "X.npy"), y)
    fit_s = time.perf_counter() - t0
    rec.update(
        fit_s=fit_s,
        throughput=y.shape[0] / fit_s,
        peak_rss_mb=_maxrss_mb(),
        ru_maxrss_mb=_ru_maxrss_mb(),
        rss_end_mb=_current_rss_mb(),
        n_classes_fitted=int(det.classes_.shape[0]),
        status="ok",
    )


# ================================================================================================ parent


def generate(job: dict) -> Path:
    """Write (or reuse) data in a child process, so this process never holds the arrays (see ``_maxrss_mb``)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--gen", json.dumps(job)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip().splitlines()[-1])


def _run_gen(job: dict) -> None:
    data_dir = Path(job["data_dir"])
    if job["kind"] == "config":
        path = ensure_config_data(job["cfg"], data_dir, job["seed"])
    else:
        path = ensure_stream_data(job["rows"], job["dim"], job["classes"], data_dir, job["seed"])
    print(path)


def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        env[var] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


_BURNER = "import numpy as np\na = np.random.rand(1500, 1500)\nwhile True:\n    a @ a\n"


def start_burners(n: int) -> list[subprocess.Popen]:
    """``n`` single-threaded processes that keep cores busy (the busy-machine case), each in its own group."""
    env = _child_env(1)
    return [
        subprocess.Popen(
            [sys.executable, "-c", _BURNER],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def stop_burners(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group of a burner started above
        except ProcessLookupError:
            pass
        proc.wait()


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def matmul_rate(threads: int) -> dict:
    """The machine's float32 matmul rate with ``threads`` threads (NumPy's BLAS), measured in a child process."""
    code = (
        "import time, numpy as np\n"
        "a = np.random.rand(4096, 512).astype(np.float32); b = np.random.rand(16384, 512).astype(np.float32)\n"
        "a @ b.T\nbest = 1e9\n"
        "for _ in range(5):\n    t = time.perf_counter(); a @ b.T; best = min(best, time.perf_counter() - t)\n"
        "print(2 * 4096 * 16384 * 512 / best / 1e9)\n"
    )
    load = load_average()
    out = subprocess.run(
        [sys.executable, "-c", code], env=_child_env(threads), capture_output=True, text=True, check=True
    )
    return {"sgemm_gflops": float(out.stdout.strip()), "load_1min": load, "shape": "4096 x 16384 x 512, float32"}


def run_measurement(spec: dict, timeout: float, workdir: Path, label: str) -> dict:
    """Run one spec in a fresh child process with a wall-clock limit; return its result dict."""
    fd, result_path = tempfile.mkstemp(suffix=".json", dir=workdir)
    os.close(fd)
    spec = dict(spec, result_path=result_path)
    log_path = Path(result_path).with_suffix(".log")
    print(f"  {label:<46}", end="", flush=True)
    burners = start_burners(int(spec.get("busy", 0)))
    if burners:
        time.sleep(5)  # let the load build up
    load_start = load_average()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(spec["threads"]),
            start_new_session=True,  # its own process group, so workers it spawns are stopped with it
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:  # the time limit, or Ctrl-C (the child has its own session: stop it too)
            timed_out = isinstance(exc, subprocess.TimeoutExpired)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the child started just above
            except ProcessLookupError:
                pass
            proc.wait()
            if not timed_out:
                stop_burners(burners)
                raise
    wall = time.perf_counter() - t0
    load_end = load_average()
    stop_burners(burners)
    try:
        res = json.loads(Path(result_path).read_text())
    except (OSError, ValueError):
        res = {"status": "no result"}
    if timed_out:
        res["status"] = "timeout"
    elif proc.returncode != 0 and not str(res.get("status", "")).startswith("error"):
        res["status"] = f"error: exit code {proc.returncode}"
    if str(res.get("status", "")).startswith("error") or res.get("status") == "no result":
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        res["log_tail"] = tail
    res.update(wall_s=wall, timeout_s=timeout, load_start=load_start, load_end=load_end, busy=int(spec.get("busy", 0)))
    for p in (result_path, str(log_path)):
        Path(p).unlink(missing_ok=True)
    print(_progress_line(res), flush=True)
    return res


def _progress_line(r: dict) -> str:
    st = r.get("status")
    if st == "ok":
        extra = f" auroc {r['auroc']:.4f}" if "auroc" in r else ""
        sc = f" score {r['score_s']:.2f} s" if "score_s" in r else ""
        return f"fit {r.get('fit_s', 0):.2f} s{sc} peak {r.get('peak_rss_mb', 0):.0f} MB{extra}"
    if st == "timeout":
        done = f" (fit {r['fit_s']:.1f} s)" if "fit_s" in r else ""
        return f"> {r['timeout_s']:.0f} s limit{done}"
    return f"{st} {r.get('log_tail', '')}"


def plan(cfg: dict, args) -> list[dict]:
    """The measurements of one configuration, in run order."""
    k = args.k
    vim_dim = min(args.vim_dim, cfg["dim"] // 2)  # pytorch-ood itself falls back to D // 2 when d >= D
    items = []

    methods = [m for m in args.methods if m in cfg.get("methods", METHODS)]

    def add(method, library, label, params=None):
        if method in methods and library in args.libraries:
            items.append(
                {
                    "method": method,
                    "library": library,
                    "label": label,
                    "params": params or {},
                    "busy": int(cfg.get("busy", 0)),
                }
            )

    add("knn", "unseen", "KNN (exact)", {"k": k, "index": "exact"})
    if args.torch_knn:
        add(
            "knn",
            "unseen",
            "KNN (exact, torch cpu, bf16 candidates)",
            {"k": k, "index": "exact", "device": "cpu", "precision": "bf16"},
        )
    for p in args.nprobe:
        params = {"k": k, "index": "ivf", "nprobe": p}
        if args.nlist:
            params["nlist"] = args.nlist
        add("knn", "unseen", f"KNN (ivf, nprobe={p})", params)
    if args.hnsw:
        add("knn", "unseen", "KNN (hnsw)", {"k": k, "index": "hnsw"})
    add("knn", "pytorch-ood", "KNN", {"k": k})
    add("knn", "pyod", "KNN (method='largest')", {"k": k})
    add("mahalanobis", "unseen", "Mahalanobis")
    add("mahalanobis", "pytorch-ood", "Mahalanobis")
    add("mahalanobis", "pyod", "MCD (class-agnostic, robust)")
    add("vim", "unseen", f"ViM (dim={vim_dim})", {"dim": vim_dim})
    add("vim", "pytorch-ood", f"ViM (d={vim_dim})", {"dim": vim_dim})
    add("energy", "unseen", "Energy")
    add("energy", "pytorch-ood", "EnergyBased")
    return items


# ------------------------------------------------------------------------------------------------ report


def _fmt_s(r: dict | None, key: str) -> str:
    if r is None:
        return "—"
    if key in r:
        v = r[key]
        return f"{v:.4f}" if v < 0.01 else (f"{v:.3f}" if v < 10 else f"{v:.1f}")
    if r.get("status") == "timeout":
        if key == "fit_s":
            return f"> {r['timeout_s']:.0f}"
        if key == "score_s" and r.get("phase") in ("probe", "score"):
            low = r["timeout_s"] - sum(r.get("fit_times", [r["fit_s"]])) - r.get("probe_s", 0.0)
            est = _estimated_score_s(r)
            return f"> {max(low, 0):.0f}" + (f" (est. {est:.0f})" if est else "")
    if str(r.get("status", "")).startswith("error"):
        return "error"
    return "—"


def _estimated_score_s(r: dict) -> float | None:
    if r.get("probe_s") and r.get("probe_rows") and r.get("n_eval"):
        return r["probe_s"] * r["n_eval"] / r["probe_rows"]
    return None


def _bounds(r: dict | None, key: str) -> tuple[float | None, bool]:
    """(value, is_lower_bound) of a time; None when unknown."""
    if r is None:
        return None, False
    if key == "total":
        f, fb = _bounds(r, "fit_s")
        s, sb = _bounds(r, "score_s")
        if f is None or s is None:
            if r.get("status") == "timeout":
                # The first fit did not finish: fit + score > limit. It did (a repetition was cut): > fit.
                return (f if f is not None else r["timeout_s"]), True
            return None, False
        return f + s, fb or sb
    if key in r:
        return float(r[key]), False
    if r.get("status") == "timeout":
        if key == "fit_s":
            return r["timeout_s"], True
        if key == "score_s" and r.get("phase") in ("probe", "score"):
            return max(r["timeout_s"] - sum(r.get("fit_times", [r["fit_s"]])) - r.get("probe_s", 0.0), 1e-9), True
    return None, False


def _speedup(ours: dict, peer: dict | None, key: str) -> tuple[float | None, bool]:
    """Peer time / our time; the flag says the value is a lower bound (the peer hit the time limit)."""
    mine, mine_low = _bounds(ours, key)
    theirs, theirs_low = _bounds(peer, key)
    if mine is None or theirs is None or mine_low or mine <= 0:
        return None, False
    return theirs / mine, theirs_low


def _fmt_speedup(v: tuple[float | None, bool]) -> str:
    x, low = v
    if x is None:
        return "—"
    return f"{'> ' if low else ''}{x:.1f}×"


def _fmt_num(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _is_ok(r: dict | None) -> bool:
    return r is not None and r.get("status") == "ok"


def work_flops(method: str, cfg: dict, params: dict, phase: str) -> float:
    """The minimal arithmetic of a method (multiply-adds x 2), so a time becomes an achieved GFLOP/s.

    Scoring: KNN the brute-force similarity product ``2 n N D`` (for approximate indexes too: their rate is then
    "brute-force equivalent"); Mahalanobis whitening plus class distances ``2 n (D^2 + D C)``; ViM logits plus the
    principal projection ``2 n D (C + dim)``; Energy the head ``2 n D C``. Fitting: the scatter ``N D^2`` (a
    symmetric product) plus, for ViM, the alpha pass ``2 N D (C + dim)``; KNN the leave-one-out threshold
    ``2 min(N, 5000) N D``; Energy scoring its threshold sample.
    """
    N, D, C = cfg["n_train"], cfg["dim"], cfg["classes"]
    n = 2 * cfg["n_test"]
    dim = params.get("dim", min(256, D // 2))
    if phase == "score":
        return {
            "knn": 2.0 * n * N * D,
            "mahalanobis": 2.0 * n * (D * D + D * C),
            "vim": 2.0 * n * D * (C + dim),
            "energy": 2.0 * n * D * C,
        }[method]
    return {
        "knn": 2.0 * min(N, 5000) * N * D,
        "mahalanobis": 1.0 * N * D * D,
        "vim": 1.0 * N * D * D + 2.0 * N * D * (C + dim),
        "energy": 2.0 * min(N, 20000) * D * C,
    }[method]


def _gflops(r: dict, cfg: dict, phase: str) -> str:
    key = "score_s" if phase == "score" else "fit_s"
    if key not in r or r[key] <= 0 or (phase == "fit" and r["library"] == "pytorch-ood" and r["method"] == "energy"):
        return "—"
    return f"{work_flops(r['method'], cfg, r.get('params', {}), phase) / r[key] / 1e9:,.0f}"


def _load(r: dict) -> str:
    a, b = r.get("load_start"), r.get("load_end")
    if a is None:
        return "—"
    return f"{a:.1f}→{b:.1f}" if b is not None else f"{a:.1f}"


def config_table(cfg: dict, results: list[dict], show_pyod: bool = True, matmul: float | None = None) -> list[str]:
    n_eval = 2 * cfg["n_test"]
    busy = f"; **busy machine**: {cfg['busy']} other processes keep the cores loaded" if cfg.get("busy") else ""
    lines = [
        f"### Config {cfg['name']}: N_train = {cfg['n_train']:,}, N_test = {cfg['n_test']:,} ID + {cfg['n_test']:,} OOD "
        f"(= {n_eval:,} scored), D = {cfg['dim']}, C = {cfg['classes']}{busy}",
        "",
        (f"Machine matmul rate: {matmul:,.0f} GFLOP/s (float32). " if matmul else "")
        + "GFLOP/s columns: the method's minimal arithmetic divided by its time (see `work_flops`); load = 1-minute "
        "load average at the start → end of the measurement.",
        "",
        "| method | library | fit s | score s | score samples/s | score GFLOP/s | fit GFLOP/s | peak RSS MB (after load) | AUROC | speed-up score | speed-up fit+score | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    peers = {(r["method"], r["library"]): r for r in results if r["library"] != "unseen" or r["label"] == "KNN (exact)"}
    exact = peers.get(("knn", "unseen"))
    names = {"knn": "KNN", "mahalanobis": "Mahalanobis", "vim": "ViM", "energy": "Energy"}
    for method in METHODS:
        rows = [r for r in results if r["method"] == method]
        if not rows:
            continue
        ptood = next((r for r in rows if r["library"] == "pytorch-ood"), None)
        for r in rows:
            lib = r["library"]
            label = r["label"]
            if lib == "unseen" and method == "knn" and r is not exact and _is_ok(r) and _is_ok(exact):
                label += f" · recall {r.get('recall', float('nan')):.3f}, ΔAUROC {r['auroc'] - exact['auroc']:+.4f}"
            thr = r.get("throughput")
            if thr is None and r.get("status") == "timeout" and r.get("phase") in ("probe", "score"):
                low = _bounds(r, "score_s")[0]
                thr_s = f"< {n_eval / low:,.0f}" if low else "—"
            else:
                thr_s = _fmt_num(thr, ",.0f")
            rss = (
                f"{r['peak_rss_mb']:,.0f} ({r.get('rss_data_mb', 0):,.0f})"
                if "peak_rss_mb" in r
                else ("killed" if r.get("status") == "timeout" else "—")
            )
            auroc = _fmt_num(r.get("auroc"), ".4f")
            sp_score = sp_total = ""
            if lib == "unseen":
                sp_score = _fmt_speedup(_speedup(r, ptood, "score_s"))
                sp_total = _fmt_speedup(_speedup(r, ptood, "total"))
            fit_s = _fmt_s(r, "fit_s") if not (lib == "pytorch-ood" and method == "energy") else "— (none)"
            status = "" if r.get("status") in ("ok", "timeout") else f" ({str(r.get('status'))[:120]})"
            lines.append(
                f"| {label} | {lib} | {fit_s} | {_fmt_s(r, 'score_s')}{status} | {thr_s} | {_gflops(r, cfg, 'score')} | "
                f"{_gflops(r, cfg, 'fit')} | {rss} | {auroc} | {sp_score} | {sp_total} | {_load(r)} |"
            )
        if show_pyod and method in ("vim", "energy"):
            lines.append(f"| {names[method]} | pyod | n/a | n/a | n/a | | | n/a | n/a | | | |")
    lines.append("")
    return lines


def checks(configs: list[dict], all_results: dict, stream: dict | None) -> list[str]:
    out = []
    for cfg in configs:
        res = all_results.get(cfg["name"], [])
        tag = f"[{cfg['name']}: {cfg['n_train']:,}×{cfg['dim']}, C={cfg['classes']}]"
        ptood = {r["method"]: r for r in res if r["library"] == "pytorch-ood"}
        knn = [r for r in res if r["library"] == "unseen" and r["method"] == "knn"]
        exact = next((r for r in knn if r["label"] == "KNN (exact)"), None)
        if exact is not None or knn:
            p = ptood.get("knn")
            p_thr = p.get("throughput") if p else None
            p_low = _bounds(p, "score_s")
            if p_thr is None and p is not None and p_low[0]:
                p_thr = 2 * cfg["n_test"] / p_low[0]  # upper bound on the peer's throughput
            bound = "> " if p_low[1] and p and "throughput" not in p else ""
            if p_thr is None:
                out.append(f"UNKNOWN: KNN scoring vs pytorch-ood {tag} — pytorch-ood KNN has no scoring time")
            else:
                if _is_ok(exact):
                    ratio = exact["throughput"] / p_thr
                    verdict = "MET" if ratio >= KNN_EXACT_TARGET else "MISSED"
                    out.append(
                        f"{verdict}: exact KNN scoring >= {KNN_EXACT_TARGET:.0f}× pytorch-ood {tag} — unseen "
                        f"{exact['throughput']:,.0f}/s vs pytorch-ood {p_thr:,.0f}/s = {bound}{ratio:.2f}×"
                    )
                verdict, detail = "MISSED", []
                for r in knn:
                    if r is exact or not _is_ok(r):
                        continue
                    ratio = r["throughput"] / p_thr
                    dauc = (r["auroc"] - exact["auroc"]) if _is_ok(exact) else float("nan")
                    eligible = _is_ok(exact) and abs(dauc) <= AUROC_TOL
                    detail.append(
                        f"{r['label']}: {r['throughput']:,.0f}/s = {bound}{ratio:.1f}× (ΔAUROC {dauc:+.4f}"
                        f"{'' if eligible else ', outside ±0.002'})"
                    )
                    if eligible and ratio >= KNN_TARGET:
                        verdict = "MET"
                if detail:
                    out.append(
                        f"{verdict}: approximate KNN scoring >= {KNN_TARGET:.0f}× pytorch-ood at ΔAUROC <= "
                        f"{AUROC_TOL} {tag} — " + "; ".join(detail)
                    )
        for method, name in (("mahalanobis", "Mahalanobis"), ("vim", "ViM")):
            ours = next((r for r in res if r["library"] == "unseen" and r["method"] == method), None)
            if ours is None:
                continue
            peer = ptood.get(method)
            sp, low = _speedup(ours, peer, "total")
            mine = _bounds(ours, "total")[0]
            theirs, theirs_low = _bounds(peer, "total")
            if sp is None:
                out.append(
                    f"UNKNOWN: {name} fit+score >= {GAUSS_TARGET:.0f}× pytorch-ood {tag} — unseen {ours.get('status')}, pytorch-ood {peer.get('status') if peer else 'not run'}"
                )
                continue
            verdict = "MET" if sp >= GAUSS_TARGET else ("UNKNOWN" if low else "MISSED")
            out.append(
                f"{verdict}: {name} fit+score >= {GAUSS_TARGET:.0f}× pytorch-ood {tag} — unseen {mine:.2f} s vs pytorch-ood "
                f"{'> ' if theirs_low else ''}{theirs:.2f} s = {'> ' if low else ''}{sp:.1f}×"
            )
    if stream is not None:
        tag = f"[{stream['rows']:,}×{stream['dim']} float32 from .npy, C={stream['classes']}]"
        if _is_ok(stream):
            verdict = "MET" if stream["peak_rss_mb"] < STREAM_RSS_TARGET_MB else "MISSED"
            out.append(
                f"{verdict}: streaming Mahalanobis fit peak RSS < 2 GiB {tag} — peak {stream['peak_rss_mb']:,.0f} MB "
                f"(after imports {stream['rss_imports_mb']:,.0f} MB), fit {stream['fit_s']:.1f} s"
            )
        else:
            out.append(f"MISSED: streaming Mahalanobis fit peak RSS < 2 GiB {tag} — {stream.get('status')}")
    return out


def machine_info(threads: int) -> dict:
    sys.path.insert(0, str(HERE))
    from _peers import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem_gb,
        "threads_per_measurement": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: version(d)
            for d in (
                "unseen",
                "numpy",
                "scipy",
                "scikit-learn",
                "torch",
                "faiss-cpu",
                "pytorch-ood",
                "pyod",
                "threadpoolctl",
            )
        },
    }


def write_report(args, configs, all_results, stream, info, started) -> tuple[str, dict]:
    check_lines = checks(configs, all_results, stream)
    md = [
        f"# Speed and memory: unseen vs pytorch-ood {info['versions'].get('pytorch-ood')} vs PyOD {info['versions'].get('pyod')}",
        "",
        f"Generated by `{' '.join(['python', 'benchmarks/bench_speed.py'] + sys.argv[1:])}` on {started} "
        f"(finished {_dt.datetime.now().isoformat(timespec='seconds')}).",
        f"Machine: {info['cpu_model']}, {info['usable_cores']} usable cores, {info['memory_gib']} GiB RAM; "
        f"every library limited to {args.threads} threads (BLAS/OpenMP, torch, faiss, scikit-learn n_jobs). "
        f"Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v) + ".",
        "",
        f"Each row is one fresh process; fit and score are timed {'once' if args.repeat == 1 else f'{args.repeat} times (fastest shown)'}. "
        "*score* = one call on ID test + OOD rows; *peak RSS* = the process's "
        "maximum resident memory (imports + data + fit + score), in brackets the RSS after imports and data "
        "loading, so the difference is the detector's own memory. AUROC: ID test vs OOD. Speed-ups: "
        "pytorch-ood time / unseen time for the same method (score only, and fit + score). "
        f"'> x' = stopped at the {args.timeout:.0f} s per-measurement limit ({args.pyod_timeout:.0f} s for PyOD; "
        f"est. = extrapolated from a "
        f"{args.probe_rows}-row probe). unseen's fit includes setting its threshold (`offset_`, scoring up to "
        "20,000 fit rows; leave-one-out for KNN); pytorch-ood and PyOD have no such step (PyOD's KNN fit does "
        "score every fit row). PyOD gets L2-normalised features for KNN (the method's representation; "
        "normalisation is timed); PyOD has no class-conditional Mahalanobis, its MCD is a class-agnostic robust "
        "covariance (different method, listed for scale).",
        "",
    ]
    for cfg in configs:
        md += config_table(
            cfg,
            all_results.get(cfg["name"], []),
            show_pyod="pyod" in args.libraries,
            matmul=info.get("matmul", {}).get("sgemm_gflops"),
        )
    if stream is not None:
        md += [
            "### Streaming fit: unseen.Mahalanobis from a .npy on disk",
            "",
            "| rows × D | classes | file GiB | fit s | rows/s | peak RSS MB | RSS after imports MB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        gib = stream["rows"] * stream["dim"] * 4 / 2**30
        if _is_ok(stream):
            md.append(
                f"| {stream['rows']:,} × {stream['dim']} | {stream['classes']} | {gib:.2f} | {stream['fit_s']:.1f} | "
                f"{stream['throughput']:,.0f} | {stream['peak_rss_mb']:,.0f} | {stream['rss_imports_mb']:,.0f} |"
            )
        else:
            md.append(
                f"| {stream['rows']:,} × {stream['dim']} | {stream['classes']} | {gib:.2f} | {stream.get('status')} | | | |"
            )
        md.append("")
    md += ["### Targets", ""]
    if args.scale != "full":
        md += [f"(The targets are meant for `--scale full`; at `--scale {args.scale}` fixed overheads dominate.)", ""]
    md += [f"- {line}" for line in check_lines] + [""]
    payload = {
        "started": started,
        "command": sys.argv,
        "machine": info,
        "settings": {
            "scale": args.scale,
            "threads": args.threads,
            "timeout_s": args.timeout,
            "pyod_timeout_s": args.pyod_timeout,
            "stream_timeout_s": args.stream_timeout,
            "seed": args.seed,
            "k": args.k,
            "nprobe": args.nprobe,
            "nlist": args.nlist,
            "probe_rows": args.probe_rows,
            "repeat": args.repeat,
        },
        "configs": configs,
        "results": all_results,
        "stream": stream,
        "checks": check_lines,
    }
    return "\n".join(md), payload


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scale", choices=sorted(SCALES), default="small", help="data presets (default: small, a smoke run)"
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="wall-clock limit per measurement in s (default 600 full, 300 medium, 20 small)",
    )
    ap.add_argument(
        "--pyod-timeout",
        type=float,
        default=None,
        help="limit for PyOD measurements (default: half of --timeout; PyOD is context, not a target)",
    )
    ap.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "_data", help="where generated data is written and reused")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output stem (default benchmarks/results, or results_small for --scale small)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=50, help="KNN neighbour rank (default 50)")
    ap.add_argument(
        "--nprobe",
        type=lambda s: [int(v) for v in s.split(",") if v],
        default=[4, 16, 64],
        help="IVF nprobe values, comma-separated (default 4,16,64)",
    )
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default: unseen's own rule)")
    ap.add_argument("--hnsw", action="store_true", help="also time unseen KNN with index='hnsw'")
    ap.add_argument(
        "--torch-knn", action="store_true", help="also time unseen KNN on torch's CPU backend with bf16 candidates"
    )
    ap.add_argument("--vim-dim", type=int, default=256, help="ViM principal dimension (capped at D // 2)")
    ap.add_argument(
        "--methods", type=lambda s: s.split(","), default=list(METHODS), help="subset of knn,mahalanobis,vim,energy"
    )
    ap.add_argument(
        "--libraries", type=lambda s: s.split(","), default=list(LIBRARIES), help="subset of unseen,pytorch-ood,pyod"
    )
    ap.add_argument(
        "--configs", type=lambda s: s.split(","), default=None, help="config names to run (default: all of the scale)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="fit and score this many times, report the fastest (default 3 small, 1 otherwise)",
    )
    ap.add_argument("--probe-rows", type=int, default=256, help="rows scored first, to extrapolate timed-out scoring")
    ap.add_argument(
        "--stream-rows",
        type=int,
        default=None,
        help="rows of the streaming-fit file (default 1,000,000 full / 50,000 small)",
    )
    ap.add_argument(
        "--stream-dim", type=int, default=None, help="columns of the streaming-fit file (default 2048 full / 512 small)"
    )
    ap.add_argument(
        "--stream-classes",
        type=int,
        default=None,
        help="classes of the streaming-fit labels (default 1000 full / 100 small)",
    )
    ap.add_argument("--no-stream", action="store_true", help="skip the streaming-fit measurement")
    ap.add_argument("--stream-only", action="store_true", help="run only the streaming-fit measurement")
    ap.add_argument(
        "--stream-timeout", type=float, default=None, help="limit for the streaming fit (default 3 × --timeout)"
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--gen", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {','.join(METHODS)}")
    for lib in args.libraries:
        if lib not in LIBRARIES:
            ap.error(f"unknown library {lib!r}; choose from {','.join(LIBRARIES)}")
    if args.timeout is None:
        args.timeout = {"full": 600.0, "medium": 300.0}.get(args.scale, 20.0)
    if args.repeat is None:
        args.repeat = 3 if args.scale == "small" else 1
    if args.pyod_timeout is None:
        args.pyod_timeout = args.timeout / 2
    if args.stream_timeout is None:
        args.stream_timeout = 3 * args.timeout
    sd = STREAM_DEFAULTS[args.scale]
    args.stream_rows = args.stream_rows or sd["rows"]
    args.stream_dim = args.stream_dim or sd["dim"]
    args.stream_classes = args.stream_classes or sd["classes"]
    if args.out is None:
        args.out = HERE / ("results" if args.scale == "full" else "results_small")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.one:
        run_one(json.loads(args.one))
        return 0
    if args.gen:
        _run_gen(json.loads(args.gen))
        return 0
    started = _dt.datetime.now().isoformat(timespec="seconds")
    info = machine_info(args.threads)
    info["matmul"] = matmul_rate(args.threads)
    print(
        f"matmul rate: {info['matmul']['sgemm_gflops']:.0f} GFLOP/s float32 on {args.threads} threads "
        f"(load {info['matmul']['load_1min']:.2f})"
    )
    print(
        f"unseen speed benchmark — scale {args.scale}, {args.threads} threads, limit {args.timeout:.0f} s per measurement"
    )
    print(f"machine: {info['cpu_model']} ({info['usable_cores']} usable cores, {info['memory_gib']} GiB)")
    configs = [c for c in SCALES[args.scale] if args.configs is None or c["name"] in args.configs]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    all_results: dict[str, list[dict]] = {}
    stream = None
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        workdir = Path(tmp)
        if not args.stream_only:
            for cfg in configs:
                print(
                    f"\nconfig {cfg['name']}: N_train={cfg['n_train']:,} N_test={cfg['n_test']:,} D={cfg['dim']} C={cfg['classes']}"
                )
                data = generate({"kind": "config", "cfg": cfg, "data_dir": str(args.data_dir), "seed": args.seed})
                results = []
                for item in plan(cfg, args):
                    spec = dict(
                        item,
                        kind="detector",
                        data=str(data),
                        threads=args.threads,
                        probe_rows=args.probe_rows,
                        repeat=args.repeat,
                    )
                    limit = args.pyod_timeout if item["library"] == "pyod" else args.timeout
                    res = run_measurement(spec, limit, workdir, f"{item['library']:<12} {item['label']}")
                    results.append({**item, **res})
                all_results[cfg["name"]] = results
        if not args.no_stream:
            print(f"\nstreaming fit: {args.stream_rows:,} × {args.stream_dim} float32, {args.stream_classes} classes")
            data = generate(
                {
                    "kind": "stream",
                    "rows": args.stream_rows,
                    "dim": args.stream_dim,
                    "classes": args.stream_classes,
                    "data_dir": str(args.data_dir),
                    "seed": args.seed,
                }
            )
            spec = {
                "kind": "stream",
                "library": "unseen",
                "method": "mahalanobis",
                "data": str(data),
                "threads": args.threads,
            }
            res = run_measurement(spec, args.stream_timeout, workdir, "unseen       Mahalanobis.fit(.npy path, y)")
            stream = {"rows": args.stream_rows, "dim": args.stream_dim, "classes": args.stream_classes, **res}
    text, payload = write_report(args, configs if not args.stream_only else [], all_results, stream, info, started)
    payload["total_wall_s"] = time.perf_counter() - t_start
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md_path, json_path = args.out.with_suffix(".md"), args.out.with_suffix(".json")
    md_path.write_text(text + "\n")
    json_path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {md_path} and {json_path} (total {payload['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
