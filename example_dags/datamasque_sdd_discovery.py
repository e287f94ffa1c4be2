"""Sensitive-data discovery: find columns DataMasque classifies as sensitive but leaves unmasked.

A discovery ruleset runs, the SDD report comes back through XCom (it is small), and a branch
decides: all sensitive columns masked -> ``all_masked``; otherwise -> ``review_unmasked``, which
lists them (send it to Slack or open a ticket from there).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator
from airflow_provider_datamasque.operators.rulesets import DataMasqueCreateRulesetOperator
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

SENSITIVE = {"PII", "PHI", "PCI"}


def unmasked_sensitive_columns(report_csv: str) -> list[str]:
    """``table.column`` of each sensitive column the ruleset does not mask."""
    rows = csv.DictReader(io.StringIO(report_csv))
    found = []
    for row in rows:
        category = (row.get("sensitive_data_category") or "").upper()
        masked = (row.get("is_masked") or "").strip().lower() in ("true", "yes", "1")
        if category in SENSITIVE and not masked:
            found.append(f"{row.get('table_name')}.{row.get('column_name')}")
    return found


with DAG(
    dag_id="datamasque_sdd_discovery",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    template_searchpath=[str(Path(__file__).parent / "rulesets")],
    params={"datamasque_connection": "warehouse_discovery"},
    tags=["datamasque", "example"],
) as dag:
    ruleset = DataMasqueCreateRulesetOperator(
        task_id="sync_discovery_ruleset",
        name="discovery_customers",
        config_yaml="discovery.yaml",
    )
    discover = DataMasqueRunOperator(
        task_id="discover",
        source_connection="{{ params.datamasque_connection }}",
        ruleset="discovery_customers",
        options={"dry_run": True},
        poll_interval=2,
    )
    report = DataMasqueSddReportOperator(task_id="sdd_report", run_id=discover.output)

    @task.branch
    def check_coverage(report_csv: str) -> str:
        return "review_unmasked" if unmasked_sensitive_columns(report_csv) else "all_masked"

    @task
    def review_unmasked(report_csv: str) -> list[str]:
        columns = unmasked_sensitive_columns(report_csv)
        print(f"Sensitive columns left unmasked: {', '.join(columns)}")
        return columns

    @task
    def all_masked() -> str:
        return "every sensitive column is masked"

    ruleset >> discover >> report
    check_coverage(report.output) >> [review_unmasked(report.output), all_masked()]
