"""1. DAG-parse cost: what importing the provider's operator and sensor modules adds to ``import airflow``.

Each sample is a fresh interpreter that imports ``airflow`` and resolves ``BaseOperator`` (every DAG
file does that anyway), then imports one provider's operator and sensor modules; the extra wall time
and resident-set growth are measured inside the child, around the second step only (peak RSS,
``ru_maxrss``, is set by ``import airflow`` itself, so the extra imports never move it; it is reported
per side as the process's max RSS). Ours and dbt Cloud's alternate sample by sample, so drift hits both equally.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict

from benchmarks._common import BenchOutput, Result, median

OURS = [
    "airflow_provider_datamasque.operators.runs",
    "airflow_provider_datamasque.operators.rulesets",
    "airflow_provider_datamasque.operators.connections",
    "airflow_provider_datamasque.operators.seeds",
    "airflow_provider_datamasque.operators.reports",
    "airflow_provider_datamasque.sensors.runs",
]
DBT = ["airflow.providers.dbt.cloud.operators.dbt", "airflow.providers.dbt.cloud.sensors.dbt"]
GOAL_MS = 25.0

_CHILD = """
import importlib, json, os, resource, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
t0 = time.perf_counter()
import airflow
from airflow.providers.common.compat.sdk import BaseOperator
t1 = time.perf_counter()
rss1 = rss()
for name in sys.argv[1:]:
    importlib.import_module(name)
t2 = time.perf_counter()
rss2 = rss()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_ms": (t1 - t0) * 1e3, "extra_ms": (t2 - t1) * 1e3, "rss_kb": rss2 - rss1,
                  "maxrss_kb": maxrss}))
"""


def _sample(modules: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *modules], capture_output=True, text=True, check=True, timeout=120
    )
    parsed: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def dbt_installed() -> bool:
    try:
        _sample(DBT[:1])
    except subprocess.CalledProcessError:
        return False
    return True


_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_breakdown(modules: list[str], top: int = 12) -> list[tuple[str, float, float]]:
    """Modules imported by ``modules`` beyond ``import airflow`` + BaseOperator, as
    ``(module, self ms, cumulative ms)``, most expensive (self) first; via ``python -X importtime``."""
    code = (
        "import airflow\nfrom airflow.providers.common.compat.sdk import BaseOperator\n"
        "import sys\nsys.stderr.write('--MARK--\\n')\n" + "".join(f"import {m}\n" for m in modules)
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    after = out.stderr.split("--MARK--", 1)[-1]
    rows: dict[str, tuple[float, float]] = {}
    for match in _IMPORTTIME.finditer(after):
        self_us, cum_us, _indent, name = match.groups()
        rows[name] = (int(self_us) / 1e3, int(cum_us) / 1e3)
    ranked = sorted(rows.items(), key=lambda item: item[1][0], reverse=True)[:top]
    return [(name, s, c) for name, (s, c) in ranked]


def run(quick: bool = False) -> BenchOutput:
    samples = 3 if quick else 15
    have_dbt = dbt_installed()
    sides = {"datamasque": OURS} | ({"dbt_cloud": DBT} if have_dbt else {})
    data: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(samples):
        for side, modules in sides.items():
            sample = _sample(modules)
            for key, value in sample.items():
                data[side][key].append(value)
    output = BenchOutput()
    ours_ms = median(data["datamasque"]["extra_ms"])
    ours_rss = median(data["datamasque"]["rss_kb"]) / 1024
    base_ms = median(data["datamasque"]["base_ms"])
    output.results.append(
        Result(
            "parse_cost",
            "extra import time, 6 operator/sensor modules (median)",
            f"<= {GOAL_MS:.0f} ms",
            f"{ours_ms:.1f} ms (import airflow + BaseOperator itself: {base_ms:.0f} ms)",
            ours_ms <= GOAL_MS,
            f"{samples} fresh interpreters, interleaved with dbt Cloud",
        )
    )
    if have_dbt:
        dbt_ms = median(data["dbt_cloud"]["extra_ms"])
        dbt_rss = median(data["dbt_cloud"]["rss_kb"]) / 1024
        output.results.append(
            Result(
                "parse_cost",
                "extra import time vs dbt Cloud operators+sensors",
                "<= dbt Cloud (ratio <= 1.0)",
                f"{ours_ms:.1f} ms vs {dbt_ms:.1f} ms, ratio {ours_ms / dbt_ms:.3f}",
                ours_ms <= dbt_ms,
            )
        )
        output.results.append(
            Result(
                "parse_cost",
                "extra RSS (resident growth from the imports) vs dbt Cloud",
                "<= dbt Cloud",
                f"{ours_rss:.2f} MiB vs {dbt_rss:.2f} MiB; process max RSS "
                f"{median(data['datamasque']['maxrss_kb']) / 1024:.1f} MiB vs "
                f"{median(data['dbt_cloud']['maxrss_kb']) / 1024:.1f} MiB",
                ours_rss <= dbt_rss,
            )
        )
    else:
        output.results.append(
            Result(
                "parse_cost",
                "extra import time vs dbt Cloud",
                "<= dbt Cloud",
                "dbt Cloud provider not installed",
                False,
            )
        )
        output.misses.append(
            "parse_cost: apache-airflow-providers-dbt-cloud is not installed, so the comparison did not run; "
            "install it (test extras) to close."
        )
    output.results.append(
        Result(
            "parse_cost",
            "extra RSS from the imports (median; process max RSS is set by import airflow)",
            "informational",
            f"{ours_rss:.2f} MiB",
            None,
        )
    )
    spread = ", ".join(f"{v:.1f}" for v in sorted(data["datamasque"]["extra_ms"]))
    output.details.append(f"datamasque extra ms, all samples sorted: {spread}")
    if have_dbt:
        spread = ", ".join(f"{v:.0f}" for v in sorted(data["dbt_cloud"]["extra_ms"]))
        output.details.append(f"dbt Cloud extra ms, all samples sorted: {spread}")
    breakdown = import_breakdown(OURS, top=8)
    output.details.append(
        "Most expensive imports the provider adds (python -X importtime, self / cumulative ms): "
        + "; ".join(f"`{name}` {s:.1f} / {c:.1f}" for name, s, c in breakdown)
    )
    if ours_ms > GOAL_MS:
        output.misses.append(
            f"parse_cost: {ours_ms:.1f} ms > {GOAL_MS:.0f} ms. Heaviest imports (self ms): "
            + ", ".join(f"{name} {s:.1f}" for name, s, _ in breakdown[:5])
            + ". Closing it: make those imports lazy (inside execute()/hook properties)."
        )
    return output
