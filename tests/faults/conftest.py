"""Fixtures for the fault-injection scenarios, shared with tests/runs through its ``_harness``."""

from __future__ import annotations

try:
    from tests.runs import _harness
except ImportError:  # pragma: no cover - tests/ not a package: its subfolders are top-level
    from runs import _harness  # type: ignore[no-redef]

_executor_safeguard = _harness._executor_safeguard
dag_factory = _harness.dag_factory
dm_airflow_db = _harness.dm_airflow_db
dm_conn = _harness.dm_conn
emu = _harness.emu
