"""unseen.scale: scoring and mergeable fits over Parquet / .npy shards, in-process and on local Ray.

The engines cut the input into the same blocks and combine them in the same order, so Ray's scores and fitted
statistics equal the local engine's exactly, and those equal ``det.fit(list_of_blocks)`` exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import unseen
import unseen.scale as scale
from unseen.exceptions import InputError
from unseen.testing import make_data

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DATA = make_data(n=2600)
X32 = DATA.X.astype(np.float32)
SPLIT = 1500  # rows of the first file
BLOCK = 400


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The fit rows as two .npy files and as two Parquet files (an embedding list column plus the label)."""
    root = tmp_path_factory.mktemp("shards")
    (root / "npy").mkdir()
    (root / "pq").mkdir()
    np.save(root / "npy" / "a.npy", X32[:SPLIT])
    np.save(root / "npy" / "b.npy", X32[SPLIT:])
    for name, lo, hi in (("a", 0, SPLIT), ("b", SPLIT, X32.shape[0])):
        emb = pa.FixedSizeListArray.from_arrays(pa.array(X32[lo:hi].ravel()), X32.shape[1])
        table = pa.table({"embedding": emb, "label": DATA.y[lo:hi]})
        pq.write_table(table, root / "pq" / f"{name}.parquet", row_group_size=300)
    return root


def _blocks(block_rows: int, parquet: bool) -> list[np.ndarray]:
    """The blocks the engines read: per file, ``block_rows`` rows (Parquet: whole row groups of 300)."""
    out = []
    step = (block_rows // 300) * 300 if parquet else block_rows
    for lo, hi in ((0, SPLIT), (SPLIT, X32.shape[0])):
        out += [X32[s : min(hi, s + step)] for s in range(lo, hi, step)]
    return out


CASES = [
    (unseen.Mahalanobis, {}, "labels"),
    (unseen.RelativeMahalanobis, {}, "label_column"),
    (unseen.Gaussian, {}, None),
    (unseen.ViM, {"dim": 16}, "head"),
    (unseen.Residual, {"dim": 16}, "head"),
    (unseen.NECO, {"dim": 8}, None),
]


def _fit_kwargs(need, parquet):
    if need == "labels":
        return {"labels": DATA.y}
    if need == "label_column":
        return {"label_column": "label"} if parquet else {"labels": DATA.y}
    if need == "head":
        return {"head": DATA.head}
    return {}


def _assert_same_state(a, b):
    sa, sb = a._get_state(), b._get_state()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(np.asarray(sa[key]), np.asarray(sb[key]), err_msg=key)


@pytest.mark.parametrize("parquet", [False, True], ids=["npy", "parquet"])
@pytest.mark.parametrize(("cls", "params", "need"), CASES, ids=[c[0].name for c in CASES])
def test_local_fit_equals_fit_on_the_blocks(shards, cls, params, need, parquet):
    inputs = shards / ("pq" if parquet else "npy")
    kwargs = _fit_kwargs(need, parquet)
    det, report = scale.fit_files(
        cls(**params), inputs, block_rows=BLOCK, feature_column="embedding" if parquet else None, **kwargs
    )
    assert report.rows == X32.shape[0] and report.engine == "local"
    y = DATA.y if need in ("labels", "label_column") else None
    ref = cls(**params).fit(_blocks(BLOCK, parquet), y, head=kwargs.get("head"))
    _assert_same_state(det, ref)
    # One fit on the whole array: another blocking of the same float32 products (rounding ~1e-7 relative)
    whole = cls(**params).fit(X32, y, head=kwargs.get("head"))
    for key, value in whole._get_state().items():
        if key in ("means_", "scatter_", "location_", "alpha_", "mean_", "eigenvalues_"):
            np.testing.assert_allclose(
                det._get_state()[key], value, rtol=1e-5, atol=1e-6 * np.abs(value).max(), err_msg=key
            )


def test_local_scores_equal_scoring_the_blocks_and_resume(shards, tmp_path):
    det = unseen.KNN(k=5).fit(X32)
    report = scale.score_files(det, shards / "npy", tmp_path / "out", block_rows=BLOCK)
    cols = scale.read_scores(tmp_path / "out")
    assert report.rows == X32.shape[0] and report.shards == len(_blocks(BLOCK, False))
    want = np.concatenate([det.score_samples(b) for b in _blocks(BLOCK, False)])
    np.testing.assert_array_equal(cols["score"], want)
    np.testing.assert_allclose(cols["score"], det.score_samples(X32), rtol=1e-10)
    np.testing.assert_array_equal(cols["row"], np.r_[np.arange(SPLIT), np.arange(X32.shape[0] - SPLIT)])
    assert set(cols["source"]) == {str(shards / "npy" / "a.npy"), str(shards / "npy" / "b.npy")}
    np.testing.assert_array_equal(cols["verdict"] == "known", cols["decision"] >= 0)
    again = scale.score_files(det, shards / "npy", tmp_path / "out", block_rows=BLOCK)
    assert again.skipped == report.shards and again.rows == 0


def test_bad_inputs_are_refused(shards, tmp_path):
    with pytest.raises(InputError, match="not a file"):
        scale.score_files(unseen.Energy().fit(DATA.logits(DATA.X)), tmp_path / "missing", tmp_path / "o")
    with pytest.raises(InputError, match="mergeable"):
        scale.fit_files(unseen.KNN(), shards / "npy")
    with pytest.raises(InputError, match="engine"):
        scale.fit_files(unseen.Gaussian(), shards / "npy", engine="spark")
    with pytest.raises(InputError, match="labels"):
        scale.fit_files(unseen.Mahalanobis(), shards / "npy")


# ---------------------------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_scores_equal_local(ray_local, shards, tmp_path):
    det = unseen.ViM(dim=16).fit(X32, head=DATA.head)
    path = det.save(tmp_path / "vim.unseen")
    local = scale.score_files(path, shards / "pq", tmp_path / "local", block_rows=600, feature_column="embedding")
    remote = scale.score_files(
        path, shards / "pq", tmp_path / "ray", engine="ray", num_actors=2, block_rows=600, feature_column="embedding"
    )
    assert remote.rows == local.rows == X32.shape[0] and remote.unfamiliar == local.unfamiliar
    a, b = scale.read_scores(tmp_path / "local"), scale.read_scores(tmp_path / "ray")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize(
    ("cls", "params", "need", "parquet"),
    [(unseen.Mahalanobis, {}, "label_column", True), (unseen.ViM, {"dim": 16}, "head", False)],
    ids=["mahalanobis-parquet", "vim-npy"],
)
def test_ray_fit_equals_local(ray_local, shards, cls, params, need, parquet):
    inputs = shards / ("pq" if parquet else "npy")
    kwargs = dict(_fit_kwargs(need, parquet), block_rows=BLOCK, feature_column="embedding" if parquet else None)
    local, _ = scale.fit_files(cls(**params), inputs, **kwargs)
    remote, report = scale.fit_files(cls(**params), inputs, engine="ray", num_actors=2, **kwargs)
    assert report.engine == "ray"
    _assert_same_state(remote, local)
