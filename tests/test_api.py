"""The public API and the registry agree with each other."""

from __future__ import annotations

import inspect

import pytest

import unseen
from unseen.base import Detector
from unseen.exceptions import InputError


def test_all_is_sorted_and_resolvable():
    assert unseen.__all__ == sorted(unseen.__all__)
    for name in unseen.__all__:
        assert getattr(unseen, name) is not None


def test_registry_and_public_classes_agree():
    infos = unseen.list_detectors()
    public = {name for name in unseen.__all__ if inspect.isclass(getattr(unseen, name))}
    public_detectors = {n for n in public if issubclass(getattr(unseen, n), Detector) and n != "Detector"}
    registered = {info.cls_path.split(":")[1] for info in infos}
    assert registered == public_detectors
    for info in infos:
        cls = getattr(unseen, info.cls_path.split(":")[1])
        assert cls.name == info.name
        assert info.family in {"logits", "distance", "subspace", "shaping", "openset", "ensemble", "learned"}
        assert info.input_kind in {"features", "logits"}


def test_list_detectors_filters():
    logit_only = unseen.list_detectors(input="logits")
    assert {"msp", "energy", "maxlogit"} <= {i.name for i in logit_only}
    assert all(i.input_kind == "logits" and not i.requires_head for i in logit_only)
    assert all(i.family == "shaping" for i in unseen.list_detectors(family="shaping"))


def test_get_detector_errors():
    with pytest.raises(InputError, match="Unknown detector 'nope'. Available: .*knn"):
        unseen.get_detector("nope")
    with pytest.raises(InputError, match="Bad parameters for detector 'knn'"):
        unseen.get_detector("knn", not_a_param=1)
    assert isinstance(unseen.get_detector("KNN"), unseen.KNN)


def test_register_third_party_detector(data, monkeypatch):
    from unseen import registry

    monkeypatch.setattr(registry, "_EXTRA", dict(registry._EXTRA))  # the registration ends with this test
    unseen.register("my_energy", "unseen.detectors.logits:Energy")
    det = unseen.get_detector("my_energy").fit(data.logits(data.X))
    assert det.score_samples(data.logits(data.X[:2])).shape == (2,)
    with pytest.raises(InputError, match="built-in"):
        unseen.register("knn", "x:y")
