"""Which public DataMasqueHook methods the HTTP tests call, so a method without one turns CI red.

Every test declares the methods it exercises with ``@pytest.mark.covers("name", ...)``. The
``hook`` fixture is a :class:`RecordingHook`: it notes each public method the test itself calls
(not the ones a method calls internally), and after a passing test the declared names must all
have been called. ``test_coverage.py`` then checks that the declarations of all tests in this
folder together name every public method, so a new method needs a new HTTP test.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook


def public_hook_methods() -> frozenset[str]:
    """Public callables of DataMasqueHook that Airflow's BaseHook does not define itself."""
    inherited = set(dir(BaseHook))
    names = set()
    for name in dir(DataMasqueHook):
        if name.startswith("_") or name in inherited:
            continue
        attr = inspect.getattr_static(DataMasqueHook, name)
        if inspect.isfunction(attr) or isinstance(attr, staticmethod | classmethod):
            names.add(name)
    return frozenset(names)


PUBLIC_METHODS = public_hook_methods()

#: Public methods called directly by the test that is running now (reset per test).
called: set[str] = set()
_depth = threading.local()


def _recording(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_depth, "value", 0)
        if depth == 0:
            called.add(name)
        _depth.value = depth + 1
        try:
            return func(*args, **kwargs)
        finally:
            _depth.value = depth

    return wrapper


def _recording_class() -> type[DataMasqueHook]:
    namespace: dict[str, Any] = {"__doc__": "DataMasqueHook that records which public methods a test calls."}
    for name in PUBLIC_METHODS:
        attr = inspect.getattr_static(DataMasqueHook, name)
        if isinstance(attr, staticmethod):
            namespace[name] = staticmethod(_recording(name, attr.__func__))
        elif isinstance(attr, classmethod):
            namespace[name] = classmethod(_recording(name, attr.__func__))
        else:
            namespace[name] = _recording(name, attr)
    return type("RecordingHook", (DataMasqueHook,), namespace)


RecordingHook = _recording_class()


def declared(function: Callable[..., Any]) -> set[str]:
    """Method names a test function declares with ``@pytest.mark.covers``."""
    names: set[str] = set()
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "covers":
            names.update(mark.args)
    return names
