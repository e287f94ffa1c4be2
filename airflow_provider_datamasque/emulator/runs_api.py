"""Endpoints for masking runs: create, list (optionally paginated), cancel, log, reports."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from airflow_provider_datamasque.emulator import reports, runs
from airflow_provider_datamasque.emulator.messages import Context, Response, json_response
from airflow_provider_datamasque.emulator.routes import route
from airflow_provider_datamasque.emulator.state import ApiError, Store

# ---- runs ------------------------------------------------------------------------------------


@route("GET", "/api/runs/")
def runs_list(ctx: Context) -> Response:
    query = ctx.query
    items = _list_runs(ctx.emu.store, query)
    if "limit" not in query:
        return json_response(200, items)
    try:
        limit = max(1, int(query["limit"]))
        offset = max(0, int(query.get("offset") or 0))
    except ValueError as exc:
        raise ApiError(400, {"detail": "limit and offset must be integers."}) from exc

    def page_url(new_offset: int) -> str:
        return f"{ctx.base_url()}{ctx.path}?{urlencode({**query, 'limit': limit, 'offset': new_offset})}"

    body = {
        "count": len(items),
        "next": page_url(offset + limit) if offset + limit < len(items) else None,
        "previous": page_url(max(0, offset - limit)) if offset > 0 else None,
        "results": items[offset : offset + limit],
    }
    return json_response(200, body)


@route("POST", "/api/runs/")
def runs_create(ctx: Context) -> Response:
    emu = ctx.emu
    run = runs.create_run(emu.store, ctx.json(), emu.run_seconds)
    with emu.store.lock:
        view = run.view()
    if emu.faults.take_run_start_drop():
        return Response(201, drop=True, fault="drop_run_start")
    return json_response(201, view)


def _run(ctx: Context, run_id: str) -> runs.Run:
    return runs.get_run(ctx.emu.store, int(run_id))


@route("GET", "/api/runs/{int}/")
def runs_get(ctx: Context, run_id: str) -> Response:
    with ctx.emu.store.lock:
        return json_response(200, _run(ctx, run_id).view())


@route("POST", "/api/runs/{int}/cancel/")
def runs_cancel(ctx: Context, run_id: str) -> Response:
    return json_response(200, runs.cancel_run(ctx.emu.store, int(run_id), ctx.emu.run_seconds))


_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d+)\s*-\s*(\d*)\s*$")


@route("GET", "/api/runs/{int}/log/")
def runs_log(ctx: Context, run_id: str) -> Response:
    with ctx.emu.store.lock:
        document = _run(ctx, run_id).log_document()
    header = ctx.headers.get("Range")
    match = _RANGE_RE.match(header) if header else None
    if match is None:
        return Response(200, document)
    total = len(document)
    start = int(match.group(1))
    end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
    if start >= total or end < start:
        return Response(416, b"", headers=[("Content-Range", f"bytes */{total}")])
    return Response(
        206, document[start : end + 1], headers=[("Content-Range", f"bytes {start}-{end}/{total}")]
    )


@route("GET", "/api/runs/{int}/sdd-report/")
def runs_sdd_report(ctx: Context, run_id: str) -> Response:
    with ctx.emu.store.lock:
        length, chunks = reports.sdd_report(_run(ctx, run_id))
    return Response(200, content_type="text/csv", stream=chunks, length=length)


@route("GET", "/api/runs/{int}/run-report/")
def runs_run_report(ctx: Context, run_id: str) -> Response:
    with ctx.emu.store.lock:
        body = reports.run_report(_run(ctx, run_id))
    return Response(200, body, content_type="text/csv")


def _list_runs(store: Store, query: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/runs/ filters; newest first, like the UI."""
    wanted_status = {s for s in query.get("run_status", "").split(",") if s}
    ruleset_name = query.get("ruleset_name", "")
    either = query.get("connection_ruleset_name", "").lower()
    name = query.get("name", "").lower()
    with store.lock:
        views = [store.runs[i].view() for i in sorted(store.runs, reverse=True)]
    out = []
    for view in views:
        if wanted_status and view["status"] not in wanted_status:
            continue
        if ruleset_name and view["ruleset_name"] != ruleset_name:
            continue
        if (
            either
            and either not in view["connection_name"].lower()
            and either not in view["ruleset_name"].lower()
        ):
            continue
        if name and name not in view["name"].lower():
            continue
        out.append(view)
    return out
