"""Run ``options`` validation, matching the server's rules and the official client's model."""

from __future__ import annotations

from typing import Any

from airflow_provider_datamasque.emulator.state import ApiError

BOOL_OPTIONS = (
    "dry_run",
    "continue_on_failure",
    "diagnostic_logging",
    "disable_instance_secret",
    "auto_pull",
)
INT_OPTIONS = ("batch_size", "max_rows", "buffer_size")
STR_OPTIONS = ("run_secret", "auto_pull_branch")
ALLOWED = frozenset(BOOL_OPTIONS + INT_OPTIONS + STR_OPTIONS)
# The official client (datamasque-python MaskingRunOptions) allows 16; the reference says 20.
# Accepting the client's lower bound keeps every client-valid request valid here.
RUN_SECRET_MIN, RUN_SECRET_MAX = 16, 256
_TRUE = {True, "true", "True", "1", "yes"}
_FALSE = {False, "false", "False", "0", "no"}


def _bad(message: str) -> ApiError:
    return ApiError(400, {"options": [message]})


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, int, str)) and value in _TRUE:
        return True
    if isinstance(value, (bool, int, str)) and value in _FALSE:
        return False
    raise _bad(f"Option '{name}' must be a boolean.")


def _as_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(f"Option '{name}' must be a positive integer.")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else -1
    except (TypeError, ValueError):
        number = -1
    if number <= 0:
        raise _bad(f"Option '{name}' must be a positive integer.")
    return number


def validate_options(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Return (options to echo, run_secret). The echo never contains the secret itself."""
    if raw is None:
        raise ApiError(400, {"options": ["This field is required."]})
    if not isinstance(raw, dict):
        raise _bad("Options must be an object.")
    echo: dict[str, Any] = {
        "dry_run": False,
        "continue_on_failure": False,
        "diagnostic_logging": False,
        "disable_instance_secret": False,
    }
    secret: str | None = None
    for name, value in raw.items():
        if name not in ALLOWED:
            raise _bad(f"Unknown option '{name}'.")
        if value is None:
            continue
        if name in BOOL_OPTIONS:
            echo[name] = _as_bool(name, value)
        elif name in INT_OPTIONS:
            echo[name] = _as_positive_int(name, value)
        elif not isinstance(value, str):
            raise _bad(f"Option '{name}' must be a string.")
        elif name == "run_secret":
            if not RUN_SECRET_MIN <= len(value) <= RUN_SECRET_MAX:
                raise _bad(
                    f"Run secret must be between {RUN_SECRET_MIN} and {RUN_SECRET_MAX} characters long."
                )
            secret = value
        else:
            echo[name] = value
    if "buffer_size" in echo:
        echo.setdefault("batch_size", echo["buffer_size"])
    echo["has_run_secret"] = True
    return echo, secret
