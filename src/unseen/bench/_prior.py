"""Which detectors held up on unseen's built-in benchmarks: the prior of :func:`unseen.bench.select`.

Placeholder until benchmarks/bench_selection.py writes it.
"""

PRIOR: dict[str, float] = {"knn": 0.0, "vim": -0.01, "sage": -0.01, "rmds": -0.02, "mahalanobis": -0.02}
