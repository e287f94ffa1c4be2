"""Apache Airflow provider for DataMasque."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point `apache_airflow_provider`)."""
    from airflow_provider_datamasque.provider_info import provider_info

    return provider_info()
