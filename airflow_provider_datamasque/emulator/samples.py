"""Sample DataMasque objects to try the emulator with (the provider's tests and benchmarks use them).

``MASK_RULESET_YAML`` masks one column; runs of ``DISCOVERY_RULESET_YAML`` also produce an SDD
report; ``POSTGRES_CONNECTION`` is the body of a database connection (the emulator never connects).
"""

from __future__ import annotations

from typing import Any

MASK_RULESET_YAML = """version: '1.0'
tasks:
  - type: mask_table
    table: customers
    key: id
    rules:
      - column: email
        masks:
          - type: from_fixed
            value: nobody@example.com
"""

DISCOVERY_RULESET_YAML = """version: '1.0'
tasks:
  - type: run_data_discovery   # the run then produces an SDD report
  - type: mask_table
    table: customers
    key: id
    rules:
      - column: phone
        masks:
          - type: from_fixed
            value: '000-000'
"""

POSTGRES_CONNECTION: dict[str, Any] = {
    "name": "pg",
    "db_type": "postgres",
    "host": "db.example.com",
    "port": 5432,
    "database": "app",
    "user": "masker",
    "dbpassword": "s3cret",
}
