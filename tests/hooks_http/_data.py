"""Objects the HTTP tests create on the emulator (the connection and ruleset of tests/runs)."""

from __future__ import annotations

import time

from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

try:
    from tests.runs import _harness
except ImportError:  # pragma: no cover - tests/ not a package: its subfolders are top-level
    from runs import _harness  # type: ignore[no-redef]

PG = _harness.PG
MASK_YAML = _harness.MASK_YAML
#: A ruleset whose runs produce an SDD report.
SDD_YAML = MASK_YAML.replace("tasks:\n", "tasks:\n  - type: run_data_discovery\n", 1)
#: A postgres connection and a masking ruleset on the emulator; returns their ids.
seeded = _harness.seed


def wait_terminal(hook: DataMasqueHook, run_id: int, timeout: float = 20.0) -> str:
    """Poll the run over HTTP until it ends; returns its final status."""
    deadline = time.monotonic() + timeout
    while True:
        status = hook.get_run_status(run_id)
        if status in _harness.TERMINAL:
            return status
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(0.05)
