"""Keeping secrets out of logs, XCom and exception text.

Two layers: values the client knows are secret (password, tokens, request fields such as
``dbpassword``) are replaced wherever they appear in a string, and dict keys that name a secret
are blanked before a body is shown to anybody.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

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


def min_secret_length() -> int:
    """Airflow's ``[logging] min_length_masked_secret`` (5 unless configured), also used here.

    Blanking a very short value everywhere it occurs would both wreck messages (a password "a"
    inside every word) and point at the secret (the reader sees which letters became ``***``), so,
    like Airflow's own masker, shorter secrets are left alone. One setting governs both, so a
    message never hides what the task log next to it shows, or the reverse. Airflow 2 has no such
    setting: the default 5 applies there too.
    """
    try:
        from airflow.configuration import conf

        return max(1, conf.getint("logging", "min_length_masked_secret", fallback=5))
    except Exception:  # no Airflow, or an unreadable setting: Airflow's default
        return 5


_short_secret_warned = False


class SecretScrubber:
    """Remembers secret strings and removes them from any text it is handed.

    Secrets shorter than :func:`min_secret_length` are not remembered (see there why); a warning
    says so once per process, without the value.
    """

    #: A cut-off tail this long or longer that starts a secret is blanked by :meth:`scrub_cut`.
    MIN_FRAGMENT = 2

    def __init__(self, min_length: int | None = None) -> None:
        self.min_length = min_secret_length() if min_length is None else max(1, min_length)
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        global _short_secret_warned
        with self._lock:
            for value in values:
                if not value:
                    continue
                if len(value) >= self.min_length:
                    self._secrets.add(value)
                elif not _short_secret_warned:
                    _short_secret_warned = True
                    log.warning(
                        "A DataMasque secret is shorter than %d characters and is not scrubbed from "
                        "messages ([logging] min_length_masked_secret); use a longer one.",
                        self.min_length,
                    )

    def _snapshot(self) -> list[str]:
        """The secrets, longest first (so a secret that contains another is removed whole)."""
        with self._lock:
            return sorted(self._secrets, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._snapshot():
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_cut(self, text: str) -> str:
        """``scrub`` for text that was cut short: a tail that starts a secret is blanked as well.

        Scrub the whole text before cutting it; this catches what lay across the cut.
        """
        text = self.scrub(text)
        longest = 0
        for secret in self._snapshot():
            for size in range(min(len(secret) - 1, len(text)), max(longest, self.MIN_FRAGMENT - 1), -1):
                if text.endswith(secret[:size]):
                    longest = size
                    break
        return text[:-longest] + REDACTED if longest else text
