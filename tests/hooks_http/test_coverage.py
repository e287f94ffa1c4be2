"""Every public DataMasqueHook method has an HTTP test here; a new method without one fails CI.

The ``covers`` marks of all tests in this folder are read statically (so running a subset does
not matter), and each mark is checked at run time by the ``hook`` fixture (see ``_coverage``).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

from . import _coverage

HERE = Path(__file__).parent


def declared_in_folder() -> dict[str, set[str]]:
    """Method name -> tests (``module::function``) that declare they call it."""
    found: dict[str, set[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        module = importlib.import_module(f"{__package__}.{path.stem}")
        functions = [f for n, f in inspect.getmembers(module, inspect.isfunction) if n.startswith("test")]
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__name__.startswith("Test") and cls.__module__ == module.__name__:
                functions += [
                    f for n, f in inspect.getmembers(cls, inspect.isfunction) if n.startswith("test")
                ]
        for function in functions:
            for name in _coverage.declared(function):
                found.setdefault(name, set()).add(f"{path.stem}::{function.__name__}")
    return found


def test_every_public_hook_method_has_an_http_test() -> None:
    covered = declared_in_folder()
    missing = sorted(_coverage.PUBLIC_METHODS - set(covered))
    assert not missing, (
        f"DataMasqueHook methods without an HTTP test in {HERE.name}/: {missing}. Add a test that "
        "calls them against the emulator and mark it @pytest.mark.covers(...)."
    )
    stale = sorted(set(covered) - _coverage.PUBLIC_METHODS)
    assert not stale, f"covers() marks name methods DataMasqueHook no longer has: {stale}"


def test_the_method_list_is_the_hooks_own_api() -> None:
    methods = _coverage.PUBLIC_METHODS
    # Spot checks from each part of the hook, so an enumeration that finds nothing cannot pass.
    assert {
        "start_run",
        "list_rulesets",
        "create_datamasque_connection",
        "upload_seed",
        "health_check",
    } <= methods
    assert {"login", "list_users", "close", "test_connection"} <= methods
    # Airflow's own BaseHook API and non-callables are not counted.
    assert not methods & set(dir(BaseHook))
    assert {"get_connection", "get_ui_field_behaviour", "client", "config", "base_url"}.isdisjoint(methods)
    assert all(callable(getattr(DataMasqueHook, name)) for name in methods)
