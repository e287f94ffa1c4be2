"""The provider registers with Airflow and its metadata matches Airflow's own schema."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_datamasque import __version__, get_provider_info


def test_provider_info_validates_against_airflow_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-datamasque"
    assert info["versions"] == [__version__]
    assert info["connection-types"][0]["connection-type"] == "datamasque"


def test_every_listed_module_and_class_exists() -> None:
    info = get_provider_info()
    modules = [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for item in info[key]
        for m in item["python-modules"]
    ]
    for name in modules:
        importlib.import_module(name)
    for dotted in [info["connection-types"][0]["hook-class-name"], *info["extra-links"]]:
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), dotted


def test_entry_point_is_registered() -> None:
    names = [ep.value for ep in entry_points(group="apache_airflow_provider")]
    assert "airflow_provider_datamasque:get_provider_info" in names


def test_airflow_lists_the_provider_and_hook(airflow_db: Path) -> None:
    airflow_cli = str(Path(sys.executable).with_name("airflow"))
    providers = subprocess.run([airflow_cli, "providers", "list"], capture_output=True, text=True, check=True)
    assert "airflow-provider-datamasque" in providers.stdout
    hooks = subprocess.run([airflow_cli, "providers", "hooks"], capture_output=True, text=True, check=True)
    assert "datamasque" in hooks.stdout


def test_importing_the_package_does_not_import_airflow() -> None:
    code = "import sys, airflow_provider_datamasque; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
