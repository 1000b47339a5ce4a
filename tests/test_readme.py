"""The README's quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import unseen

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "'auroc'" in out and (tmp_path / "knn.unseen").is_file()


def test_pytorch_story_runs_in_ten_lines(tmp_path, monkeypatch):
    """The README's PyTorch story: a fitted, saved detector and a report from a real torch classifier."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from torch.utils.data import DataLoader, TensorDataset

    from tests._digits import digits, digits_mlp, torch_threads

    code = re.search(r"### From your PyTorch model.*?\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    X, y, X_test, y_test = digits()
    scrambled = np.stack([row[np.random.default_rng(i).permutation(64)] for i, row in enumerate(X_test)])

    def loader(a, b=None):
        tensors = [torch.from_numpy(a)] + ([torch.from_numpy(b)] if b is not None else [])
        return DataLoader(TensorDataset(*tensors), batch_size=128)

    namespace = {
        "model": digits_mlp(),
        "train_loader": loader(X[:800], y[:800]),
        "val_loader": loader(X[800:], y[800:]),
        "test_loader": loader(X_test, y_test),
        "ood_loader": loader(scrambled),
    }
    monkeypatch.chdir(tmp_path)
    with torch_threads(1):
        exec(compile(code, "README PyTorch story", "exec"), namespace)
    det = unseen.load(tmp_path / "detector.unseen")
    assert det.name == namespace["choice"].name
    html = (tmp_path / "report" / "report.html").read_text()
    assert "my OOD" in html and "auto-select" in html


def test_signed_save_and_load_snippet_runs(tmp_path, monkeypatch):
    code = re.search(r"### Saved files: what a checksum.*?\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNSEEN_KEY", "a-deployment-secret-of-32-bytes!")
    X = np.abs(np.random.default_rng(0).normal(size=(100, 4)))
    import os

    exec(compile(code, "README signing", "exec"), {"unseen": unseen, "os": os, "X": X})
    with pytest.raises(unseen.PersistenceError, match="another key"):
        unseen.load(tmp_path / "knn.unseen", key="some-other-key-of-16+bytes")
