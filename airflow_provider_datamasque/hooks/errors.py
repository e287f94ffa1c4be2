"""The provider's error hierarchy.

Everything the provider raises for a DataMasque problem is a ``DataMasqueError`` (an
``AirflowException``), so DAG authors can catch one type and never see a raw ``requests`` or
``json`` traceback. Messages are built from already-redacted parts only.
"""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException


class DataMasqueError(AirflowException):
    """Base class of every error the provider raises about DataMasque."""


class DataMasqueConfigError(DataMasqueError, ValueError):
    """Bad local input (connection fields, operator arguments), found before any API call."""


class DataMasqueTransportError(DataMasqueError):
    """No HTTP response at all: connection refused or dropped, DNS failure, timeout, TLS failure."""


class DataMasqueApiError(DataMasqueError):
    """DataMasque answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        detail: str = "",
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        self.body = body
        self.retry_after = retry_after


class DataMasqueAuthError(DataMasqueApiError):
    """Credentials rejected (failed login, or 401/403 after one re-login)."""


class DataMasqueNotFoundError(DataMasqueApiError):
    """404: the object does not exist (or, for reports, was not produced)."""


class DataMasqueConflictError(DataMasqueApiError):
    """409: for run starts, another run is already active on the connection."""


class DataMasqueNotReadyError(DataMasqueApiError):
    """502: the DataMasque gateway is up but the application is still starting."""


class DataMasqueRunError(DataMasqueError):
    """A masking run ended in a state the task treats as failure."""

    def __init__(self, message: str, *, run_id: int | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
