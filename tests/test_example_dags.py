"""The example DAGs, end to end with ``dag.test()`` against the emulator."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "example_dags"


@pytest.fixture
def example(
    airflow_db: Path, dags_folder: Path, dm_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Load an example DAG from the DAGs folder (where ``dag.test()`` looks for it)."""
    shutil.copytree(EXAMPLES, dags_folder, dirs_exist_ok=True)
    monkeypatch.setenv("DATAMASQUE_EXAMPLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("DATAMASQUE_EXAMPLE_REPORT_ROOT", (tmp_path / "reports").as_uri())
    monkeypatch.setenv(
        "AIRFLOW_CONN_STAGING_DB",
        "postgres://masker:Staging-Db-Pw-77@staging-db.example.internal:5432/customers",
    )

    _activate_example_asset(airflow_db)

    def load(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(f"example_{name}", dags_folder / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    return load


def _activate_example_asset(home: Path) -> None:
    """Airflow 3.0's ``dag.test()`` does not mark a DAG's outlet assets active (the DAG processor
    does, later lines do it in ``dag.test()`` too), so a task with outlets fails there. Do what the
    DAG processor would."""
    import sqlite3

    import airflow

    if not airflow.__version__.startswith("3.0."):
        return
    uri = "datamasque://masked/customers"
    with sqlite3.connect(home / "airflow.db") as db:
        db.execute("INSERT OR IGNORE INTO asset_active (name, uri) VALUES (?, ?)", (uri, uri))


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def _db_connection(emu: Any, name: str) -> None:
    emu.create_connection(
        name=name,
        mask_type="database",
        db_type="postgres",
        host="warehouse.example.internal",
        port=5432,
        database="warehouse",
        user="masker",
        password="Warehouse-Pw-42",
    )


def test_nightly_masking(example: Any, dm_emulator: Any, tmp_path: Path) -> None:
    _db_connection(dm_emulator, "warehouse_nightly_copy")
    dag_run = example("datamasque_nightly_masking").test()
    states = _states(dag_run)
    assert states == {"sync_ruleset": "success", "mask": "success", "sdd_report": "success"}, states
    assert dm_emulator.runs_created == 1
    assert dm_emulator.get_run(1)["status"] == "finished"
    reports = list((tmp_path / "reports").rglob("sdd_report.csv"))
    assert len(reports) == 1
    assert reports[0].read_text().startswith("table_schema,table_name,column_name")


def test_mask_before_refresh(example: Any, dm_emulator: Any, tmp_path: Path) -> None:
    dag_run = example("datamasque_mask_before_refresh").test()
    states = _states(dag_run)
    assert set(states.values()) == {"success"}, states
    assert dm_emulator.runs_created == 1
    assert dm_emulator.get_run(1)["status"] == "finished"
    work = tmp_path / "work"
    assert (work / "masked.db").exists()
    assert not (work / "staging.db").exists(), "cleanup must drop staging"
    assert (work / "cleanup.done").exists()
    assert list((tmp_path / "reports").rglob("sdd_report.csv"))
    # The temporary DataMasque connection is gone again.
    assert dm_emulator.count_requests("DELETE", r"/api/connections/[^/]+/") == 1


def test_mask_before_refresh_cleans_up_after_failure(example: Any, dm_emulator: Any, tmp_path: Path) -> None:
    dag = example("datamasque_mask_before_refresh")
    mask = dag.get_task("mask")
    mask.run_name = "refresh [emulator:fail]"
    dag_run = dag.test()
    states = _states(dag_run)
    assert states["mask"] == "failed"
    assert states["cleanup_staging"] == "success"
    assert not (tmp_path / "work" / "staging.db").exists()
    assert dm_emulator.get_run(1)["status"] == "failed"


def test_sdd_discovery_branches_on_unmasked_columns(example: Any, dm_emulator: Any) -> None:
    _db_connection(dm_emulator, "warehouse_discovery")
    dag_run = example("datamasque_sdd_discovery").test()
    states = _states(dag_run)
    assert states["sdd_report"] == "success"
    # discovery.yaml masks only email, so sensitive columns stay unmasked: the review branch runs.
    assert states["review_unmasked"] == "success", states
    assert states["all_masked"] == "skipped", states
    assert dm_emulator.runs_created == 1


def test_unmasked_sensitive_columns_parser() -> None:
    spec = importlib.util.spec_from_file_location("sdd_module", EXAMPLES / "datamasque_sdd_discovery.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = (
        "table_schema,table_name,column_name,data_type,sensitive_data_category,matched_keyword,is_masked\n"
        "public,customers,email,text,PII,email,true\n"
        "public,customers,phone,text,PII,phone,false\n"
        "public,orders,total,numeric,,,false\n"
    )
    assert module.unmasked_sensitive_columns(report) == ["customers.phone"]
