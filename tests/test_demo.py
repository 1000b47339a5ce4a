"""The demo runs end to end on the bundled digits and produces sensible numbers."""

from __future__ import annotations

from unseen import demo


def test_demo_runs_and_detectors_beat_chance():
    rows = demo.run(seed=0, verbose=False)
    detectors = {r["detector"] for r in rows}
    assert len(detectors) >= 25
    far = {r["detector"]: r["auroc"] for r in rows if r["ood"] == "scrambled digits"}
    near = {r["detector"]: r["auroc"] for r in rows if r["ood"] == "unknown digits 6-9"}
    assert max(near.values()) > 0.85 and far["mahalanobis"] > 0.9
    assert all(0.0 <= r["oscr"] <= 1.0 for r in rows)
    table = demo.format_table(rows)
    assert table.count("\n") == len(detectors) + 1
