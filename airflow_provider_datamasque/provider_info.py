"""Provider metadata, kept apart from ``__init__`` so importing the package stays cheap."""

from __future__ import annotations

from typing import Any

from airflow_provider_datamasque import __version__

INTEGRATION = "DataMasque"
_P = "airflow_provider_datamasque"


def provider_info() -> dict[str, Any]:
    from airflow_provider_datamasque.connection_fields import EXTRA_FIELDS, SENSITIVE_EXTRAS

    conn_fields = {
        name: {
            "label": label,
            "description": description,
            "schema": {
                "type": ["string", "null"],
                **({"format": "password"} if name in SENSITIVE_EXTRAS else {}),
            },
        }
        for name, (label, description) in EXTRA_FIELDS.items()
    }
    return {
        "package-name": "airflow-provider-datamasque",
        "name": "DataMasque",
        "description": "Masking runs, rulesets, connections and sensitive-data-discovery reports "
        "in [DataMasque](https://datamasque.com/).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://datamasque.com/portal/documentation/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{_P}.hooks.datamasque"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{_P}.operators.runs",
                    f"{_P}.operators.rulesets",
                    f"{_P}.operators.connections",
                    f"{_P}.operators.seeds",
                    f"{_P}.operators.reports",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{_P}.sensors.runs"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{_P}.triggers.runs"]}],
        "connection-types": [
            {
                "connection-type": "datamasque",
                "hook-class-name": f"{_P}.hooks.datamasque.DataMasqueHook",
                "hook-name": "DataMasque",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "DataMasque URL", "login": "Username"},
                    "placeholders": {
                        "host": "https://datamasque.example.com",
                        "login": "DataMasque username (or leave empty and set API token)",
                    },
                },
                "conn-fields": conn_fields,
            }
        ],
        "extra-links": [f"{_P}.operators.runs.DataMasqueRunLink"],
    }
