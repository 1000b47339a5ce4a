"""Saving without pickle: round trips, and refusals that say which problem they found."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import unseen
from unseen.exceptions import PersistenceError
from unseen.persistence import FORMAT_VERSION

from ._forge import read_parts, rewrite, write_parts


@pytest.fixture
def saved(data, tmp_path):
    det = unseen.Mahalanobis().fit(data.X, data.y)
    return det, det.save(tmp_path / "det.unseen")


def test_round_trip_file_and_directory(data, saved, tmp_path):
    det, path = saved
    assert zipfile.is_zipfile(path)
    for p in (path, det.save(tmp_path / "as_dir")):
        again = unseen.load(p)
        np.testing.assert_array_equal(again.score_samples(data.X_ood), det.score_samples(data.X_ood))
        assert again.offset_ == det.offset_ and again.get_params() == det.get_params()
    assert (tmp_path / "as_dir" / "manifest.json").is_file()


def test_manifest_describes_the_detector(saved):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        m = json.loads(zf.read("manifest.json"))
        names = zf.namelist()
    assert names == ["manifest.json", "arrays.npz"]
    assert m["format"] == "unseen-detector" and m["format_version"] == FORMAT_VERSION
    assert m["detector"] == "mahalanobis" and m["library_version"] == unseen.__version__
    assert set(m["arrays"]) >= {"whitening_", "centers_", "location_", "classes_"}
    assert all(len(ref["sha256"]) == 64 for ref in m["arrays"].values())


def test_arrays_are_read_without_np_load_or_pickle(saved, monkeypatch):
    """unseen reads each .npy member itself after checking its header: neither np.load nor pickle runs."""
    import pickle

    _, path = saved

    def refuse(*args, **kwargs):
        raise AssertionError("must not be called while loading")

    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert isinstance(unseen.load(path), unseen.Mahalanobis)


def test_tampered_array_is_refused(saved):
    _, path = saved

    def flip(blob):
        b = bytearray(blob)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)

    rewrite(path, arrays=flip, forge=False)
    with pytest.raises(PersistenceError, match="tampered"):
        unseen.load(path)


def test_tampered_array_with_forged_file_checksum_is_refused(saved):
    """Even with the whole-file and manifest checksums recomputed, each array's checksum must still match."""
    from ._forge import arrays_of, npz_bytes

    _, path = saved
    manifest, blob = read_parts(path)
    npz = arrays_of(blob)
    npz["location_"] = npz["location_"] + 1.0
    write_parts(path, manifest, npz_bytes(npz))
    with pytest.raises(PersistenceError, match="tampered.*location_"):
        unseen.load(path)


def test_truncated_file_is_refused(saved):
    _, path = saved
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(PersistenceError, match="truncated"):
        unseen.load(path)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.unseen"
    text.write_text("hello")
    with pytest.raises(PersistenceError, match="foreign"):
        unseen.load(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("x.txt", "x")
    with pytest.raises(PersistenceError, match="foreign"):
        unseen.load(other_zip)
    with pytest.raises(PersistenceError, match="does not exist"):
        unseen.load(tmp_path / "missing.unseen")


def test_foreign_manifest_is_refused(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "format": "something-else"})
    with pytest.raises(PersistenceError, match="foreign"):
        unseen.load(path)


def test_newer_format_is_refused_with_upgrade_hint(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "format_version": FORMAT_VERSION + 1, "library_version": "9.0"})
    with pytest.raises(PersistenceError, match="newer.*upgrade unseen"):
        unseen.load(path)


def test_unknown_detector_is_refused(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "detector": "no_such_detector"})
    with pytest.raises(PersistenceError, match="no_such_detector"):
        unseen.load(path)


@pytest.mark.parametrize(
    "target", ["os:system", "subprocess:Popen", "unseen.detectors.neighbors:_drop_self", "tests.conftest:Data"]
)
def test_stored_class_must_be_a_registered_detector(saved, target):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "class": target})
    with pytest.raises(PersistenceError, match="cannot be loaded here"):
        unseen.load(path)


def test_stored_name_and_class_must_agree(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "class": "unseen.detectors.neighbors:KNN"})
    with pytest.raises(PersistenceError, match="names detector 'mahalanobis' but class"):
        unseen.load(path)


def test_conformal_flagger_round_trip(data, tmp_path):
    from unseen.decisions import ConformalFlagger

    flagger = ConformalFlagger(unseen.KNN(k=5).fit(data.X), alpha=0.1).calibrate(data.X_test)
    again = unseen.load(flagger.save(tmp_path / "flagger.unseen"))
    assert isinstance(again, ConformalFlagger) and isinstance(again.detector, unseen.KNN)
    np.testing.assert_array_equal(again.p_values(data.X_ood), flagger.p_values(data.X_ood))
    with pytest.raises(PersistenceError, match="IsolationForest"):
        from sklearn.ensemble import IsolationForest

        ConformalFlagger(IsolationForest(random_state=0).fit(data.X)).calibrate(data.X_test).save(tmp_path / "x.unseen")
