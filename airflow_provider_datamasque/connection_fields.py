"""The extra fields of a ``datamasque`` Airflow connection (no Airflow import: read at provider discovery)."""

from __future__ import annotations

#: Extra fields of a ``datamasque`` connection, with their UI label and help text.
EXTRA_FIELDS: dict[str, tuple[str, str]] = {
    "api_token": (
        "API token",
        "Long-lived DataMasque API token; used instead of logging in with Login/Password.",
    ),
    "verify_ssl": ("Verify TLS", "true (default), false, or the path of a CA bundle file."),
    "timeout": ("Timeout (seconds)", "Read timeout of each request; default 60."),
    "max_retries": ("Max retries", "Retries of a request that is safe to repeat; default 5."),
    "retry_backoff": ("Retry backoff (seconds)", "First wait between retries, doubled each time; default 1."),
    "retry_max_wait": ("Max retry wait (seconds)", "Longest wait between two retries; default 60."),
    "ui_url": ("DataMasque UI URL", "Base URL for links to runs in the UI, when it differs from Host."),
}
SENSITIVE_EXTRAS = frozenset({"api_token"})
