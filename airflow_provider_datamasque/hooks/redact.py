"""Keeping secrets out of logs, XCom and exception text.

Two layers: values the client knows are secret (password, tokens, request fields such as
``dbpassword``) are replaced wherever they appear in a string, and dict keys that name a secret
are blanked before a body is shown to anybody.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

#: Keys whose values are never shown. Matched case-insensitively as substrings, like Airflow's
#: own sensitive-field list, so ``dbpassword`` and ``run_secret`` are covered.
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "credential",
    "connection_string",
    "private",
    "service_account",
)

#: Keys that contain a sensitive part but are harmless metadata (``has_run_secret`` is a bool).
_NOT_SENSITIVE = frozenset({"has_run_secret", "has_temporary_password", "key_id", "disable_instance_secret"})


def is_sensitive_key(key: object) -> bool:
    name = str(key).lower()
    if name in _NOT_SENSITIVE:
        return False
    return any(part in name for part in SENSITIVE_KEY_PARTS)


def redact_value(value: Any) -> Any:
    """Return ``value`` with every sensitive key's value replaced, recursively."""
    if isinstance(value, Mapping):
        return {k: REDACTED if is_sensitive_key(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def sensitive_values(value: Any) -> Iterable[str]:
    """Yield every non-empty string stored under a sensitive key, recursively."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if is_sensitive_key(k) and isinstance(v, str) and v:
                yield v
            else:
                yield from sensitive_values(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from sensitive_values(v)


class SecretScrubber:
    """Remembers secret strings and removes them from any text it is handed."""

    #: Shorter strings are not scrubbed: replacing "a" everywhere would wreck every message.
    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value and len(value) >= self.MIN_LENGTH:
                    self._secrets.add(value)

    def scrub(self, text: str) -> str:
        if not self._secrets:
            return text
        # Longest first, so a secret that contains another is removed whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
