"""The service's settings: one dataclass, passed to :func:`unseen.service.create_app` or, for uvicorn's worker
processes, through the ``UNSEEN_SERVICE_SETTINGS`` environment variable (JSON)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InputError

__all__ = ["ENV", "Settings"]

ENV = "UNSEEN_SERVICE_SETTINGS"


@dataclass
class Settings:
    """How the service runs.

    Attributes
    ----------
    models : str or None
        The model repository directory (``NAME/VERSION/model.unseen``); None serves no models.
    store : str
        ``sqlite:///path.db`` (embedded default) or ``postgresql://user@host:port/db``.
    auth : bool
        Require an API key (``Authorization: Bearer KEY``) on inference, metadata, metrics and the dashboard's
        data; health checks and the dashboard's static page stay open.
    max_rows : int
        Most rows in one inference request (413 above).
    max_body_bytes : int
        Largest request body (413 above); 256 rows × 1024 FP32 features in JSON take about 3 MB.
    max_text_chars : int
        Longest text in a BYTES input.
    max_explain : int
        Most exemplars per row an explanation may ask for.
    sample_rate : float
        Share of scored rows whose feature vector is kept for the drift tests (a model's ``config.json`` can
        set its own); at most ``max_samples_per_request`` per request.
    max_samples_per_request : int
    cors_origins : list of str
        Origins allowed to call the API from a browser; empty (the default) turns CORS off.
    reload_interval : float
        Seconds between checks of the repository for new or changed versions (0: only on request).
    public_metrics : bool
        Serve ``/metrics`` without an API key (for a Prometheus on a private network).
    window_seconds, n_windows, alert_level : int, int, float
        The dashboard's and the metrics' monitoring windows and alert level.
    migrate : bool
        Create or migrate the store's tables at start (``unseen serve`` does it once, before its workers).
    """

    models: str | None = None
    store: str = "sqlite:///unseen.db"
    auth: bool = True
    max_rows: int = 4096
    max_body_bytes: int = 32 * 1024 * 1024
    max_text_chars: int = 10_000
    max_explain: int = 20
    sample_rate: float = 0.05
    max_samples_per_request: int = 8
    cors_origins: list[str] = field(default_factory=list)
    reload_interval: float = 10.0
    public_metrics: bool = False
    window_seconds: int = 300
    n_windows: int = 24
    alert_level: float = 0.01
    migrate: bool = True

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_body_bytes", "max_text_chars", "max_explain", "window_seconds", "n_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"Settings: {name} must be a positive integer, got {value!r}.")
        if not 0.0 <= float(self.sample_rate) <= 1.0:
            raise InputError(f"Settings: sample_rate must lie in [0, 1], got {self.sample_rate!r}.")
        if not 0.0 < float(self.alert_level) < 1.0:
            raise InputError(f"Settings: alert_level must lie in (0, 1), got {self.alert_level!r}.")
        if float(self.reload_interval) < 0:
            raise InputError(f"Settings: reload_interval must be >= 0 seconds, got {self.reload_interval!r}.")

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> Settings:
        raw = os.environ.get(ENV)
        if not raw:
            raise InputError(f"{ENV} is not set: start the service with 'unseen serve' (or create_app(Settings(...))).")
        data: dict[str, Any] = json.loads(raw)
        return cls(**data)
