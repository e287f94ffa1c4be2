"""Fixtures for the masking-run tests: emulator, Airflow connection, DAG runner.

The fixtures live in ``_harness`` so that ``tests/faults`` can share them. The private
``AIRFLOW_HOME`` comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from ._harness import _executor_safeguard, dag_factory, dm_airflow_db, dm_conn, emu

__all__ = ["_executor_safeguard", "dag_factory", "dm_airflow_db", "dm_conn", "emu"]
