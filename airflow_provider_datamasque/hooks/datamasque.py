"""``DataMasqueHook``: the whole DataMasque API behind an Airflow Connection of type ``datamasque``."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_datamasque.connection_fields import EXTRA_FIELDS, SENSITIVE_EXTRAS
from airflow_provider_datamasque.hooks.client import ClientConfig, DataMasqueClient, RetryPolicy
from airflow_provider_datamasque.hooks.connections import ConnectionsMixin
from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueError
from airflow_provider_datamasque.hooks.rulesets import RulesetsMixin
from airflow_provider_datamasque.hooks.runs import RunsMixin, RunStatus
from airflow_provider_datamasque.hooks.seeds import SeedsMixin
from airflow_provider_datamasque.hooks.system import SystemMixin
from airflow_provider_datamasque.hooks.users import UsersMixin

__all__ = ["DataMasqueHook", "RunStatus"]


def _extra(extras: dict[str, Any], name: str) -> Any:
    """An extra by plain name, or by the ``extra__datamasque__`` prefix older UIs wrote."""
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__datamasque__{name}")
    return None if value == "" else value


def _number(conn_id: str, extras: dict[str, Any], name: str, default: float, *, integer: bool = False) -> Any:
    value = _extra(extras, name)
    if value is None:
        return int(default) if integer else default
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or (not integer and number == 0):
        kind = "a whole number >= 0" if integer else "a positive number of seconds"
        raise DataMasqueConfigError(
            f"Airflow connection {conn_id!r}: extra {name!r} must be {kind}, got {value!r}."
        )
    return number


def _verify(conn_id: str, value: Any) -> bool | str:
    if value is None or value is True:
        return True
    if value is False:
        return False
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    import os

    if os.path.exists(text):
        return text
    raise DataMasqueConfigError(
        f"Airflow connection {conn_id!r}: extra 'verify_ssl' must be true, false or the path of a CA bundle; "
        f"{text!r} is none of these (no such file)."
    )


def config_from_connection(conn: Any) -> ClientConfig:
    """Build the client configuration from an Airflow Connection, naming the field at fault."""
    conn_id = getattr(conn, "conn_id", None) or "datamasque"
    try:
        extras: dict[str, Any] = dict(conn.extra_dejson or {})
    except Exception:
        raise DataMasqueConfigError(
            f"Airflow connection {conn_id!r}: the Extra field is not valid JSON."
        ) from None
    host = (conn.host or "").strip()
    scheme = str(_extra(extras, "scheme") or (conn.schema if conn.schema in ("http", "https") else "https"))
    if host and "://" not in host:
        host = f"{scheme}://{host}"
    if host and conn.port and "://" in host and ":" not in host.split("://", 1)[1].split("/", 1)[0]:
        prefix, _, rest = host.partition("://")
        hostname, slash, path = rest.partition("/")
        host = f"{prefix}://{hostname}:{conn.port}{slash}{path}"
    try:
        return ClientConfig(
            base_url=host,
            username=conn.login or None,
            password=conn.password or None,
            api_token=_extra(extras, "api_token"),
            verify=_verify(conn_id, _extra(extras, "verify_ssl")),
            read_timeout=_number(conn_id, extras, "timeout", 60.0),
            connect_timeout=min(10.0, _number(conn_id, extras, "timeout", 60.0)),
            retry=RetryPolicy(
                max_retries=_number(conn_id, extras, "max_retries", 5, integer=True),
                backoff=_number(conn_id, extras, "retry_backoff", 1.0),
                max_backoff=_number(conn_id, extras, "retry_max_wait", 60.0),
            ),
            ui_url=_extra(extras, "ui_url"),
        )
    except DataMasqueConfigError as exc:
        message = str(exc)
        if not message.startswith("Airflow connection "):  # extras errors already name it
            message = f"Airflow connection {conn_id!r}: {message}"
        raise DataMasqueConfigError(message) from None


class DataMasqueHook(
    RunsMixin, RulesetsMixin, ConnectionsMixin, SeedsMixin, UsersMixin, SystemMixin, BaseHook
):
    """Talk to DataMasque through the Airflow connection ``datamasque_conn_id``.

    Host is the DataMasque URL; Login/Password log in (tokens are renewed on expiry), or the
    extra ``api_token`` is used as is. One pooled HTTP session per hook.

    :param datamasque_conn_id: Airflow connection id of type ``datamasque``.
    """

    conn_name_attr = "datamasque_conn_id"
    default_conn_name = "datamasque_default"
    conn_type = "datamasque"
    hook_name = "DataMasque"

    def __init__(self, datamasque_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datamasque_conn_id = datamasque_conn_id

    @cached_property
    def config(self) -> ClientConfig:
        conn = self.get_connection(self.datamasque_conn_id)
        return config_from_connection(conn)

    @cached_property
    def client(self) -> DataMasqueClient:  # type: ignore[override]
        from airflow.providers.common.compat.sdk import mask_secret

        return DataMasqueClient(self.config, mask_secret=mask_secret)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def run_url(self, run_id: int | str) -> str:
        """Link to a run in the DataMasque UI (extra ``ui_url`` when the UI lives elsewhere)."""
        base = (self.config.ui_url or self.config.base_url).rstrip("/")
        return f"{base}/run-logs/{run_id}/"

    # -- Airflow integration ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button and ``airflow connections test``: reach DataMasque and log in."""
        try:
            user = self.get_current_user()
        except DataMasqueError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI must get an answer, never a traceback
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to DataMasque at {self.config.base_url} as {user.get('username', '?')}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {"host": "DataMasque URL", "login": "Username", "password": "Password"},
            "placeholders": {
                "host": "https://datamasque.example.com",
                "login": "DataMasque username (or leave empty and set API token)",
                "password": "DataMasque password",
                "extra": json.dumps({"verify_ssl": True, "timeout": 60}),
                "api_token": "40-character API token (optional)",
                "verify_ssl": "true",
                "timeout": "60",
                "max_retries": "5",
                "retry_backoff": "1",
                "retry_max_wait": "60",
                "ui_url": "https://datamasque.example.com",
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields as form widgets, for Airflow lines that build the form from the hook."""
        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import PasswordField, StringField
        except ImportError:  # Airflow 3 reads 'conn-fields' from the provider info instead.
            return {}
        widgets: dict[str, Any] = {}
        for name, (label, description) in EXTRA_FIELDS.items():
            if name in SENSITIVE_EXTRAS:
                widgets[name] = PasswordField(
                    lazy_gettext(label), widget=BS3PasswordFieldWidget(), description=description
                )
            else:
                widgets[name] = StringField(
                    lazy_gettext(label), widget=BS3TextFieldWidget(), description=description
                )
        return widgets
