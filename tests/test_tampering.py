"""Saved files that were changed, forged, bombed or signed with another key are refused with a message that
names the problem; format-1 files written by the previous unseen still load.

The forger here knows the format: after changing a field it recomputes the array and manifest checksums
(:mod:`tests._forge`), so each test reaches the check it is about. Without ``key=`` a forger can always do
that; only a signature cannot be recomputed without the key (README, "Trust model of saved files").

Design note for KNN's approximate index (``index_bytes_``): loading still hands the serialised faiss index to
``faiss.deserialize_index`` (after the manifest, its schema and the checksums have been checked, and followed by
checks of ``ntotal`` and ``d`` against the bank). faiss refuses the corruptions tried here with a RuntimeError,
which load turns into a PersistenceError, but a native deserializer is not written to withstand hostile input.
The fix that removes it: never deserialize — store what the index is made of as plain arrays and rebuild it at
load (IVF: the coarse centroids ``(nlist, D)`` float32, then ``add(bank_)`` in row order gives the same lists;
IVF-PQ: also the PQ codebooks ``(M, 2^nbits, D/M)``; HNSW: the graph's ``neighbors``/``offsets``/``levels`` and
entry point, each validated against ``ntotal = bank_.shape[0]`` before being copied into a new
``IndexHNSWFlat``, or simply a rebuild from ``bank_`` with the stored seed where bitwise-equal candidates are
not needed). Until then, deployments should load KNN files with ``key=``.
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import unseen
from unseen import persistence
from unseen.decisions import ConformalFlagger
from unseen.exceptions import InputError, PersistenceError

from ._forge import arrays_of, npz_bytes, read_parts, reref, rewrite, write_parts

KEY = b"0123456789abcdef-test-key"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def saved(data, tmp_path):
    det = unseen.Mahalanobis().fit(data.X, data.y)
    return det, det.save(tmp_path / "det.unseen")


def refused(path, match, **kwargs):
    with pytest.raises(PersistenceError, match=match):
        unseen.load(path, **kwargs)


# ------------------------------------------------------------------------------------------ every top-level field


@pytest.mark.parametrize("version", [0, -5, True, "2", 2.0, None])
def test_format_version_must_be_a_known_integer(saved, version):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "format_version": version})
    refused(path, "format_version")


def test_missing_or_foreign_format_tag(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {k: v for k, v in m.items() if k != "format"})
    refused(path, "foreign")


def test_library_version_must_be_a_string(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "library_version": 3})
    refused(path, "library_version")


@pytest.mark.parametrize("value", [None, "abc", 5])
def test_arrays_checksum_missing_or_malformed(saved, value):
    _, path = saved
    manifest, blob = read_parts(path)
    write_parts(path, manifest, blob)  # forged: recomputes arrays_sha256 first ...
    manifest["arrays_sha256"] = value  # ... then breaks it, and re-digests the manifest
    manifest["manifest_sha256"] = persistence._manifest_digest(manifest)
    write_parts(path, manifest, blob, forge=False)
    refused(path, "arrays_sha256|checksum")


def test_changed_threshold_digit_is_caught_by_the_manifest_digest(saved):
    """A careless edit (one digit of offset_) without recomputing the digest: refused."""
    det, path = saved
    manifest, blob = read_parts(path)
    text = json.dumps(manifest)
    digit = repr(det.offset_)[-3]
    edited = text.replace(
        repr(det.offset_), repr(det.offset_)[:-3] + str((int(digit) + 1) % 10) + repr(det.offset_)[-2:]
    )
    assert edited != text
    write_parts(path, manifest, blob, forge=False, text=edited)
    refused(path, "manifest's checksum does not match")


def test_missing_manifest_digest_is_refused_in_format_2(saved):
    _, path = saved
    manifest, blob = read_parts(path)
    del manifest["manifest_sha256"]
    write_parts(path, manifest, blob, forge=False)
    refused(path, "manifest's checksum")


def test_unknown_top_level_field(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: {**m, "run_on_load": "import os"})
    refused(path, "unknown field")


@pytest.mark.parametrize("text", ['{"format": "unseen-detector", "a": 1, "a": 2}', '{"format": NaN}', "[" * 100_000])
def test_manifest_json_is_strict(saved, text):
    _, path = saved
    manifest, blob = read_parts(path)
    write_parts(path, manifest, blob, forge=False, text=text)
    refused(path, "not valid JSON|foreign")


# ------------------------------------------------------------------------------------------ params and state


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda m: m["params"].update(k="x"), "no parameter"),  # Mahalanobis has no k
        (lambda m: m["params"].update(tpr=5), "tpr must be <= 1"),
        (lambda m: m["params"].update(tpr="0.95"), "tpr must be a real number"),
        (lambda m: m["state"].update(offset_="x"), "offset_ must be a finite number"),
        (lambda m: m["state"].pop("offset_"), "offset_ is missing"),
        (lambda m: m["state"].update(n_features_in_=31), "declared"),
        (lambda m: m["state"].update(n_features_in_=True), "n_features_in_ must be int"),
        (lambda m: m["state"].update(evil_=1), "not part of the declared state"),
        (lambda m: m["state"].update(score_samples=1), "not allowed"),
        (lambda m: m["state"].update(_index_cache=1), "not allowed"),
        (lambda m: m["state"].update(fit_=1), "not part of the declared state"),
        (lambda m: m.update(detector=7), "detector is 7"),
        (lambda m: m.update(params=[]), "params must be a JSON object"),
        (lambda m: m.update(nested={"members_": []}), "empty list"),
    ],
)
def test_params_and_state_are_validated(saved, change, match):
    _, path = saved

    def edit(m):
        change(m)
        return m

    rewrite(path, manifest=edit)
    refused(path, match)


def test_offset_nan_in_a_format_1_file(saved):
    """Format 1 had no digest and wrote NaN: a NaN threshold is refused, not loaded."""
    _, path = saved
    manifest, blob = read_parts(path)
    manifest["format_version"] = 1
    del manifest["manifest_sha256"]
    text = json.dumps(manifest).replace(json.dumps(manifest["state"]["offset_"]), "NaN")
    write_parts(path, manifest, blob, forge=False, text=text)
    refused(path, "NaN is not a JSON number")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("dtype", "|O", "dtype"),
        ("dtype", ">f8", "dtype"),
        ("dtype", "<V8", "dtype"),
        ("shape", [-1, 32], "shape"),
        ("shape", [32, True], "shape"),
        ("shape", "32,32", "shape"),
        ("sha256", "0" * 63, "sha256"),
        ("key", "", "key"),
    ],
)
def test_array_references_are_validated(saved, field, value, match):
    _, path = saved
    rewrite(path, manifest=lambda m: (m["arrays"]["whitening_"].update({field: value}), m)[1])
    refused(path, match)


def test_array_reference_with_an_extra_field(saved):
    _, path = saved
    rewrite(path, manifest=lambda m: (m["arrays"]["whitening_"].update(pickle=True), m)[1])
    refused(path, "exactly the fields")


def test_state_shapes_must_agree_with_each_other(saved):
    """centers_ (C, r) with r != the whitening's rank, checksums recomputed: refused from the manifest alone."""
    _, path = saved
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    arrays["centers_"] = arrays["centers_"][:, :-1]
    reref(manifest, arrays)
    write_parts(path, manifest, npz_bytes(arrays))
    refused(path, "centers_")


def test_npy_header_must_match_the_manifest(saved):
    """The manifest says (32, 32) but the .npy member holds (16, 64): refused before the data is read."""
    _, path = saved
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    arrays["whitening_"] = arrays["whitening_"].reshape(16, 64)
    write_parts(path, manifest, npz_bytes(arrays))
    refused(path, "stored as .* but declared")


def test_extra_npz_member_is_refused(saved):
    _, path = saved
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    arrays["smuggled"] = np.zeros(3)
    write_parts(path, manifest, npz_bytes(arrays))
    refused(path, "not the .* the manifest declares")


def test_name_and_class_must_agree_for_nested_objects(data, tmp_path):
    flagger = ConformalFlagger(unseen.KNN(k=5).fit(data.X), alpha=0.1).calibrate(data.X_test)
    path = flagger.save(tmp_path / "f.unseen")
    rewrite(path, manifest=lambda m: (m["params"]["detector"]["saved"].update({"class": "os:system"}), m)[1])
    refused(path, "cannot be loaded here")


def test_nesting_depth_is_bounded(saved):
    _, path = saved

    def deep(m):
        entry = {"detector": "ensemble", "class": None, "params": {}, "state": {}, "arrays": {}, "nested": {}}
        for _ in range(12):
            entry = {**entry, "nested": {"members_": [dict(entry)]}}
        m["nested"] = entry["nested"]
        return m

    rewrite(path, manifest=deep)
    refused(path, "nested more than")


# ------------------------------------------------------------------------------------------ signatures


def test_signed_file_round_trip_and_refusals(data, tmp_path):
    det = unseen.KNN(k=5).fit(data.X)
    path = det.save(tmp_path / "signed.unseen", key=KEY)
    again = unseen.load(path, key=KEY)
    np.testing.assert_array_equal(again.score_samples(data.X_ood), det.score_samples(data.X_ood))
    assert unseen.load(path).offset_ == det.offset_  # without a key the checksums are still checked
    refused(path, "signed with another key", key=b"another-key-of-16-bytes")
    # A forger who recomputes every checksum but does not know the key:
    rewrite(path, manifest=lambda m: (m["state"].update(offset_=m["state"]["offset_"] - 1.0), m)[1])
    refused(path, "tampered with or signed with another key", key=KEY)
    assert unseen.load(path).offset_ == det.offset_ - 1.0  # ... which is why deployments pass key=


def test_unsigned_file_is_refused_when_a_key_is_required(saved):
    _, path = saved
    refused(path, "not signed", key=KEY)


def test_format_1_file_is_refused_when_a_key_is_required():
    refused(DATA / "v1-mahalanobis.unseen", "not signed", key=KEY)


@pytest.mark.parametrize("signature", ["abc", {"algorithm": "MD5", "value": "00"}, {"algorithm": "HMAC-SHA256"}])
def test_malformed_signature(saved, signature):
    _, path = saved
    manifest, blob = read_parts(path)
    manifest["signature"] = signature
    write_parts(path, manifest, blob, forge=False)
    refused(path, "signature", key=KEY)


@pytest.mark.parametrize("key", [b"short", "", 12345])
def test_weak_or_wrong_type_key_is_refused(data, tmp_path, key):
    with pytest.raises(InputError, match="key"):
        unseen.Gaussian().fit(data.X).save(tmp_path / "g.unseen", key=key)


def test_signing_covers_the_arrays(data, tmp_path):
    """The signature covers arrays_sha256, so swapped arrays with recomputed checksums fail verification."""
    det = unseen.Gaussian().fit(data.X)
    path = det.save(tmp_path / "g.unseen", key=KEY)
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    arrays["location_"] = arrays["location_"] + 1.0
    reref(manifest, arrays)
    write_parts(path, manifest, npz_bytes(arrays))
    refused(path, "signed with another key", key=KEY)


# ------------------------------------------------------------------------------------------ size limits


def test_compressed_members_are_refused(saved):
    """unseen writes stored members only; a deflated one could expand without bound (a zip bomb)."""
    _, path = saved
    rewrite(path, compression=zipfile.ZIP_DEFLATED, forge=False)
    refused(path, "compressed")


def test_compressed_npz_member_is_refused(saved):
    _, path = saved
    manifest, blob = read_parts(path)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays_of(blob))
    write_parts(path, manifest, buf.getvalue())
    refused(path, "compressed")


def test_oversized_manifest_is_refused_before_parsing(saved, monkeypatch):
    _, path = saved
    monkeypatch.setattr(persistence, "MAX_MANIFEST_BYTES", 1000)
    refused(path, "manifest.json' declares")


def test_declared_huge_array_is_refused_without_allocating_it(saved):
    """The manifest and the .npy header both declare an 8 GiB array of a ~1 KB member: refused with little memory."""
    _, path = saved
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    shape = (2**28, 4)
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    import io

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"\0" * 1024)
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        for k, v in arrays.items():
            if k == "location_":
                zf.writestr("location_.npy", member.getvalue())
            else:
                buf = io.BytesIO()
                np.save(buf, v)
                zf.writestr(f"{k}.npy", buf.getvalue())
    manifest["arrays"]["location_"].update(shape=list(shape))
    write_parts(path, manifest, raw.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(PersistenceError, match="declares|truncated|fewer than"):
            unseen.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"loading a refused file used {peak / 2**20:.0f} MiB"


def test_truncated_npy_data_is_refused(saved):
    _, path = saved
    manifest, blob = read_parts(path)
    import io

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        for k, v in arrays_of(blob).items():
            buf = io.BytesIO()
            np.save(buf, v)
            data = buf.getvalue()
            zf.writestr(f"{k}.npy", data[:-8] if k == "whitening_" else data)
    write_parts(path, manifest, raw.getvalue())
    refused(path, "truncated|fewer than")


# ------------------------------------------------------------------------------------------ native payloads (faiss)


@pytest.fixture
def hnsw(data, tmp_path):
    det = unseen.KNN(k=5, index="hnsw", hnsw_m=8).fit(data.X)
    return det, det.save(tmp_path / "hnsw.unseen")


def _forge_index(path, change):
    manifest, blob = read_parts(path)
    arrays = arrays_of(blob)
    arrays["index_bytes_"] = np.asarray(change(bytearray(arrays["index_bytes_"].tobytes())), dtype=np.uint8).ravel()
    reref(manifest, arrays)
    write_parts(path, manifest, npz_bytes(arrays))


def test_forged_faiss_index_garbage(hnsw):
    _, path = hnsw

    def garbage(b):
        b[20:60] = bytes(range(40))
        return np.frombuffer(bytes(b), dtype=np.uint8)

    _forge_index(path, garbage)
    refused(path, "fails on a probe row")


def test_forged_faiss_index_empty_bytes(hnsw):
    _, path = hnsw
    _forge_index(path, lambda b: np.zeros(0, dtype=np.uint8))
    refused(path, "does not match index='hnsw'")


def test_forged_faiss_index_truncated(hnsw):
    _, path = hnsw
    _forge_index(path, lambda b: np.frombuffer(bytes(b[: len(b) // 2]), dtype=np.uint8))
    refused(path, "fails on a probe row")


def test_forged_ivf_index_with_a_huge_ntotal(data, tmp_path):
    """faiss loads an IVF index whose ntotal says 2^40 and would search it; the bank check refuses it."""
    det = unseen.KNN(k=5, index="ivf", nlist=4).fit(data.X)
    path = det.save(tmp_path / "ivf.unseen")

    def huge(b):
        b[8:16] = (2**40).to_bytes(8, "little")  # fourcc (4) + d (4), then ntotal (int64)
        return np.frombuffer(bytes(b), dtype=np.uint8)

    _forge_index(path, huge)
    refused(path, "holds 1099511627776 vectors")


def test_bank_of_the_wrong_shape_is_refused_at_load(data, tmp_path):
    det = unseen.KNN(k=5).fit(data.X, data.y)
    path = det.save(tmp_path / "knn.unseen")
    for change in (lambda a: a[:, :-1], lambda a: a[:-1]):
        manifest, blob = read_parts(path)
        arrays = arrays_of(blob)
        arrays["bank_"] = np.ascontiguousarray(change(arrays["bank_"]))
        reref(manifest, arrays)
        write_parts(tmp_path / "bad.unseen", manifest, npz_bytes(arrays))
        refused(tmp_path / "bad.unseen", "bank_")


# ------------------------------------------------------------------------------------------ format 1 compatibility


def test_format_1_files_written_by_the_previous_unseen_still_load():
    """tests/data/v1-*.unseen were written by unseen before format 2 (no manifest digest)."""
    expected = json.loads(open(DATA / "v1-expected.json").read())
    rng = np.random.default_rng(expected["seed"])
    y = rng.integers(0, 3, 60)
    rng.normal(size=(60, 4))  # the fit rows, drawn before the queries
    Q = np.abs(rng.normal(size=(5, 4)) * 2)
    del y
    maha = unseen.load(DATA / "v1-mahalanobis.unseen")
    np.testing.assert_allclose(maha.score_samples(Q), expected["expected"]["mahalanobis"], rtol=1e-12)
    flagger = unseen.load(DATA / "v1-conformal.unseen")
    np.testing.assert_allclose(flagger.p_values(Q), expected["expected"]["conformal"], rtol=1e-12)
    osc = unseen.load(DATA / "v1-openset.unseen")
    assert osc.predict(Q).tolist() == expected["expected"]["openset"] and osc.unknown_label_ == "unknown"


def test_format_1_file_is_still_schema_checked(tmp_path):
    """No digest in format 1, but every other check applies."""
    manifest, blob = read_parts(DATA / "v1-mahalanobis.unseen")
    manifest["state"]["evil_"] = 1
    write_parts(tmp_path / "v1.unseen", manifest, blob, forge=False)
    refused(tmp_path / "v1.unseen", "not part of the declared state")


def test_saving_a_non_finite_scalar_is_refused(data, tmp_path):
    det = unseen.Gaussian().fit(data.X)
    det.offset_ = float("nan")
    with pytest.raises(PersistenceError, match="offset_ = nan"):
        det.save(tmp_path / "nan.unseen")


def test_undeclared_plugin_state_loads_under_the_generic_rules(tmp_path, monkeypatch):
    """A plugin detector without state_spec is still checked: names, no shadowing, and the probe row."""
    from unseen import registry

    from .test_conformance import DistanceToMean

    monkeypatch.setitem(
        registry._EXTRA, DistanceToMean.name, (f"tests.test_conformance:{DistanceToMean.__name__}", None)
    )
    X = np.random.default_rng(0).normal(size=(50, 3))
    det = DistanceToMean().fit(X)
    path = det.save(tmp_path / "plugin.unseen")
    np.testing.assert_array_equal(unseen.load(path).score_samples(X), det.score_samples(X))
    rewrite(path, manifest=lambda m: (m["state"].update(get_params=1), m)[1])
    refused(path, "not allowed")
    manifest, blob = read_parts(det.save(tmp_path / "plugin2.unseen"))
    arrays = arrays_of(blob)
    arrays["mean_"] = arrays["mean_"][:2]  # inconsistent with scale_: fails the probe row
    reref(manifest, arrays)
    write_parts(tmp_path / "plugin2.unseen", manifest, npz_bytes(arrays))
    refused(tmp_path / "plugin2.unseen", "probe row")


def test_checksums_are_sha256_of_the_content(saved):
    """The stored digests are what the README says they are (so an operator can verify them by hand)."""
    _, path = saved
    manifest, blob = read_parts(path)
    assert manifest["arrays_sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["manifest_sha256"] == persistence._manifest_digest(manifest)
