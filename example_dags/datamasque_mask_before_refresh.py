"""Mask before refresh: restore production into staging, mask it, hand the masked copy over.

The chain teams build today with Step Functions or Logic Apps, as one DAG:

1. ``restore_staging``: clone production into a staging database. Here a SQLite file copy;
   plug in your cloud operator instead (``RdsRestoreDbInstanceFromDbSnapshotOperator``, an Azure
   SQL database copy, ...).
2. ``point_datamasque_at_staging``: create or update the DataMasque connection for staging and
   test it (the password comes from the Airflow connection ``staging_db`` and never reaches logs).
3. ``sync_ruleset`` and ``mask``: the ruleset from git, then one masking run (retries reattach).
4. ``sdd_report``: the sensitive-data-discovery report, to storage.
5. ``hand_over``: publish the masked copy (here a file copy; in the cloud a snapshot or a swap)
   and emit the ``masked_customers`` Asset (a Dataset on Airflow 2) for downstream DAGs.
6. ``cleanup_staging``: always runs (``trigger_rule="all_done"``): drops staging and the
   temporary DataMasque connection, whatever happened before.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_datamasque.operators.connections import DataMasqueCreateConnectionOperator
from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator
from airflow_provider_datamasque.operators.rulesets import DataMasqueCreateRulesetOperator
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

# Where the local stand-ins keep their files, and where reports go: any ObjectStoragePath URI.
WORKDIR = Path(
    os.environ.get("DATAMASQUE_EXAMPLE_WORKDIR") or Path(tempfile.gettempdir()) / "datamasque-examples"
)
REPORT_ROOT = os.environ.get("DATAMASQUE_EXAMPLE_REPORT_ROOT") or (WORKDIR / "reports").as_uri()

MASKED_CUSTOMERS = Asset("datamasque://masked/customers")
STAGING_CONNECTION = "staging_customers"

with DAG(
    dag_id="datamasque_mask_before_refresh",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    template_searchpath=[str(Path(__file__).parent / "rulesets")],
    tags=["datamasque", "example"],
) as dag:

    @task
    def restore_staging() -> str:
        """Clone production into staging. Replace with your snapshot-restore operator."""
        WORKDIR.mkdir(parents=True, exist_ok=True)
        production = WORKDIR / "production.db"
        if not production.exists():
            with sqlite3.connect(production) as db:
                db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)")
                db.executemany(
                    "INSERT INTO customers (email, phone) VALUES (?, ?)",
                    [(f"user{i}@example.com", f"555-01{i:02d}") for i in range(50)],
                )
        staging = WORKDIR / "staging.db"
        shutil.copyfile(production, staging)
        return str(staging)

    point_at_staging = DataMasqueCreateConnectionOperator(
        task_id="point_datamasque_at_staging",
        name=STAGING_CONNECTION,
        connection_config={
            "db_type": "postgres",
            "host": "{{ conn.staging_db.host }}",
            "port": "{{ conn.staging_db.port }}",
            "database": "{{ conn.staging_db.schema }}",
            "user": "{{ conn.staging_db.login }}",
            "password": "{{ conn.staging_db.password }}",
        },
    )
    ruleset = DataMasqueCreateRulesetOperator(
        task_id="sync_ruleset",
        name="refresh_customers",
        config_yaml="customers.yaml",
    )
    mask = DataMasqueRunOperator(
        task_id="mask",
        source_connection=STAGING_CONNECTION,
        ruleset="refresh_customers",
        poll_interval=2,
    )
    report = DataMasqueSddReportOperator(
        task_id="sdd_report",
        run_id=mask.output,
        destination=REPORT_ROOT + "/{{ ds }}/{{ run_id | replace(':', '_') }}/sdd_report.csv",
    )

    @task(outlets=[MASKED_CUSTOMERS])
    def hand_over(staging: str) -> str:
        """Publish the masked copy. Replace with a snapshot (RDS) or an export (Azure)."""
        masked = WORKDIR / "masked.db"
        shutil.copyfile(staging, masked)
        return str(masked)

    @task(trigger_rule="all_done")
    def cleanup_staging(staging: str | None = None) -> None:
        """Always drop staging and the temporary DataMasque connection, whatever failed."""
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        Path(staging or WORKDIR / "staging.db").unlink(missing_ok=True)
        hook = DataMasqueHook()
        existing = hook.find_datamasque_connection(STAGING_CONNECTION)
        if existing:
            hook.delete_datamasque_connection(existing["id"])
        (WORKDIR / "cleanup.done").write_text("staging dropped\n")

    staging = restore_staging()
    handed_over = hand_over(staging)
    staging >> point_at_staging >> ruleset >> mask >> report >> handed_over
    handed_over >> cleanup_staging(staging)
