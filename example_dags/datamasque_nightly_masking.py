"""Nightly masking: keep the ruleset in git, mask deferrably, file the SDD report by date.

1. The ruleset YAML beside this DAG is created or updated in DataMasque (unchanged: no write).
2. The masking run waits in the triggerer (``deferrable=True``), so no worker slot is held for hours.
3. The SDD report is streamed to storage under a dated path (any ObjectStoragePath URI: file://,
   s3://, gs://, abfs://; set ``DATAMASQUE_EXAMPLE_REPORT_ROOT``).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator
from airflow_provider_datamasque.operators.rulesets import DataMasqueCreateRulesetOperator
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

# Where the local stand-ins keep their files, and where reports go: any ObjectStoragePath URI.
WORKDIR = Path(
    os.environ.get("DATAMASQUE_EXAMPLE_WORKDIR") or Path(tempfile.gettempdir()) / "datamasque-examples"
)
REPORT_ROOT = os.environ.get("DATAMASQUE_EXAMPLE_REPORT_ROOT") or (WORKDIR / "reports").as_uri()

with DAG(
    dag_id="datamasque_nightly_masking",
    schedule="0 2 * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # DataMasque runs one masking run per connection at a time
    template_searchpath=[str(Path(__file__).parent / "rulesets")],
    params={"datamasque_connection": "warehouse_nightly_copy", "report_root": REPORT_ROOT},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["datamasque", "example"],
) as dag:
    ruleset = DataMasqueCreateRulesetOperator(
        task_id="sync_ruleset",
        name="nightly_customers",
        config_yaml="customers.yaml",
    )
    mask = DataMasqueRunOperator(
        task_id="mask",
        source_connection="{{ params.datamasque_connection }}",
        ruleset="nightly_customers",
        options={"continue_on_failure": False},
        deferrable=True,
        poll_interval=30,
        execution_timeout=timedelta(hours=6),
    )
    report = DataMasqueSddReportOperator(
        task_id="sdd_report",
        run_id=mask.output,
        destination="{{ params.report_root }}/{{ (dag_run.logical_date or dag_run.run_after) | ds }}/sdd_report.csv",
    )
    ruleset >> mask >> report
