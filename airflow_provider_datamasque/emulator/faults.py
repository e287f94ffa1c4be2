"""Fault injection: deterministic (seeded) errors, drops, throttling and latency.

One ``random.Random(seed)`` guarded by a lock decides every fault, so a given sequence of
requests sees the same faults on every test run.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass


@dataclass
class FaultConfig:
    """What to break, and how often. Rates are fractions of the requests matching ``path_pattern``."""

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    path_pattern: str | None = None
    token_expiry_after: int | None = None
    drop_run_start_responses: int = 0
    seed: int = 0


@dataclass(frozen=True)
class FaultDecision:
    """The fault chosen for one request: ``kind`` is "drop", "rate_limit" or "error"."""

    kind: str
    status: int = 0


class FaultInjector:
    """Applies a FaultConfig; thread-safe so concurrent requests draw from one seeded stream."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the configuration and re-seed, so the fault sequence restarts deterministically."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._pattern = re.compile(config.path_pattern) if config.path_pattern else None
            self._run_start_drops_left = config.drop_run_start_responses

    def matches(self, method: str, path: str) -> bool:
        """True when faults apply to this request (regex searched in ``"METHOD /path/"``)."""
        return self._pattern is None or self._pattern.search(f"{method} {path}") is not None

    def decide(self, method: str, path: str) -> FaultDecision | None:
        """Draw at most one fault for a request; ``None`` means serve it normally."""
        cfg = self.config
        if not (cfg.drop_rate or cfg.rate_limit_rate or cfg.error_rate):
            return None
        if not self.matches(method, path):
            return None
        with self._lock:
            roll = self._rng.random()
            if roll < cfg.drop_rate:
                return FaultDecision("drop")
            roll -= cfg.drop_rate
            if roll < cfg.rate_limit_rate:
                return FaultDecision("rate_limit", 429)
            roll -= cfg.rate_limit_rate
            if roll < cfg.error_rate and cfg.error_statuses:
                return FaultDecision("error", self._rng.choice(cfg.error_statuses))
        return None

    def latency_for(self, method: str, path: str) -> float:
        """Seconds to sleep before answering this request."""
        if self.config.latency > 0 and self.matches(method, path):
            return self.config.latency
        return 0.0

    def take_run_start_drop(self) -> bool:
        """Consume one of the ``drop_run_start_responses`` budget; True means drop this response."""
        with self._lock:
            if self._run_start_drops_left > 0:
                self._run_start_drops_left -= 1
                return True
        return False
