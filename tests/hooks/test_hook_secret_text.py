"""Secrets in text the client quotes: non-JSON bodies (escaped, cut) and the minimum secret length."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_datamasque.hooks import redact
from airflow_provider_datamasque.hooks.errors import DataMasqueError
from airflow_provider_datamasque.hooks.redact import REDACTED, SecretScrubber, min_secret_length

from ._support import BASE

#: Characters ``repr`` escapes: a scrubber looking for the raw value misses the escaped quote.
TRICKY = "pa'ss\"w\\or\nd-Z9q"
RUN_URL = f"{BASE}/api/runs/1/"


def leaked(text: str, secret: str, fragment: int = 5) -> list[str]:
    """Pieces of ``secret`` (raw or repr-escaped, whole or any ``fragment``-long slice) in ``text``."""
    forms = {secret, repr(secret)[1:-1], secret.replace("\n", " ")}
    found = [form for form in forms if form in text]
    for form in forms:
        found += [
            form[i : i + fragment] for i in range(len(form) - fragment + 1) if form[i : i + fragment] in text
        ]
    return found


def quoted(text: str) -> str:
    """The body snippet the message quotes."""
    return text.split("instead of JSON (", 1)[1].split(").", 1)[0]


def error_text(hook: object, api: object, body: str, *, status: int, ctype: str = "text/plain") -> str:
    api.get(RUN_URL, status_code=status, text=body, headers={"Content-Type": ctype})  # type: ignore[attr-defined]
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)  # type: ignore[attr-defined]
    return f"{info.value}\n{info.value!r}\n{info.value.detail}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [200, 400])
def test_non_json_body_with_escapable_secret(make_hook, api, status):
    hook = make_hook(password=TRICKY)
    text = error_text(hook, api, f"login as admin/{TRICKY} refused", status=status)
    assert leaked(text, TRICKY) == []
    assert REDACTED in text
    assert "login as admin/" in text  # the rest of the message survives


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize("shift", [180, 190, 198])
def test_non_json_secret_straddling_the_cut(make_hook, api, status, shift):
    secret = "straddle-Secret-0123456789"
    hook = make_hook(password=secret)
    text = error_text(hook, api, "x" * shift + secret + " and more" + "y" * 300, status=status)
    assert leaked(text, secret) == []
    snippet = quoted(text)[1:-1]  # without repr's quotes
    assert not any(snippet.endswith(secret[:size]) for size in range(2, len(secret)))
    assert "x" * 20 in text


def test_non_json_title_with_escapable_secret(make_hook, api):
    hook = make_hook(password=TRICKY)
    body = f"<html><title>Denied: {TRICKY}</title></html>"
    text = error_text(hook, api, body, status=502, ctype="text/html")
    assert leaked(text, TRICKY) == []
    assert "Denied: " in text


def test_scrub_cut_blanks_a_tail_that_starts_a_secret():
    scrubber = SecretScrubber(min_length=5)
    scrubber.add("hunter2-secret", "other-secret-longer")
    assert scrubber.scrub_cut("password=hunt") == f"password={REDACTED}"
    assert scrubber.scrub_cut("x other-sec") == f"x {REDACTED}"  # the longest matching tail
    assert scrubber.scrub_cut("ends with h") == "ends with h"  # one character is no fragment
    assert scrubber.scrub_cut("whole hunter2-secret") == f"whole {REDACTED}"
    assert scrubber.scrub_cut("nothing here") == "nothing here"


def test_min_length_follows_airflow_setting(monkeypatch):
    monkeypatch.delenv("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", raising=False)
    assert min_secret_length() == 5  # Airflow's own default
    default = SecretScrubber()
    default.add("abcd", "abcde")
    assert default.scrub("abcd abcde") == f"abcd {REDACTED}"
    monkeypatch.setenv("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", "2")
    lowered = SecretScrubber()
    lowered.add("q7", "x")
    assert lowered.scrub("q7 x") == f"{REDACTED} x"


def test_short_secret_warns_once_without_the_value(monkeypatch, caplog):
    monkeypatch.setattr(redact, "_short_secret_warned", False)
    scrubber = SecretScrubber(min_length=5)
    with caplog.at_level(logging.WARNING, logger=redact.__name__):
        scrubber.add("pw1")
        scrubber.add("pw2")
    warnings = [r.getMessage() for r in caplog.records if r.name == redact.__name__]
    assert len(warnings) == 1
    assert "shorter than 5 characters" in warnings[0]
    assert "pw1" not in warnings[0]
