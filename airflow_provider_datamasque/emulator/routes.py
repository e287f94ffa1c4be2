"""The route table: endpoints register themselves with ``@route``; the server calls ``resolve``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_datamasque.emulator.messages import Response

Endpoint = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    """``auth=False`` marks the few endpoints the server answers without a token."""

    method: str
    pattern: re.Pattern[str]
    endpoint: Endpoint
    auth: bool = True


ROUTES: list[Route] = []


def route(method: str, path: str, auth: bool = True) -> Callable[[Endpoint], Endpoint]:
    """Register an endpoint; ``{id}`` matches one path segment, ``{int}`` digits only."""
    regex = "^" + path.replace("{id}", "([^/]+)").replace("{int}", "([0-9]+)") + "$"

    def register(func: Endpoint) -> Endpoint:
        ROUTES.append(Route(method, re.compile(regex), func, auth))
        return func

    return register


def resolve(method: str, path: str) -> tuple[Route | None, tuple[str, ...], bool]:
    """(route, url groups, path_exists). ``path_exists`` with no route means 405."""
    path_exists = False
    for candidate in ROUTES:
        match = candidate.pattern.match(path)
        if match is None:
            continue
        if candidate.method == method:
            return candidate, match.groups(), True
        path_exists = True
    return None, (), path_exists
