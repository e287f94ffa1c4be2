"""The other design for benchmark 4: a minimal native-async (aiohttp) run watcher.

It does what ``DataMasqueRunTrigger`` does per poll (GET the run, then GET the log from the cursor
with ``Range`` and parse the new entries with the provider's own ``parse_log_tail``), but on the event
loop with aiohttp instead of the sync hook in ``asyncio.to_thread``. It logs in once per watcher and
keeps one keep-alive connection per watcher, like one hook per trigger. No retries or error mapping:
it is the cheapest honest version of the alternative, a lower bound on what it would cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from airflow_provider_datamasque.hooks.runs import LogCursor, RunStatus, format_log_entry, parse_log_tail

log = logging.getLogger("benchmarks.async_poller")


async def watch_run(
    base_url: str, username: str, password: str, run_id: int, poll_interval: float
) -> dict[str, Any]:
    """Poll until the run is terminal; returns the final status and the wall time it was seen."""
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        async with session.post(
            "/api/auth/token/login/", json={"username": username, "password": password}
        ) as response:
            response.raise_for_status()
            token = (await response.json())["key"]
        auth = {"Authorization": f"Token {token}", "Accept": "application/json"}
        cursor = LogCursor()
        while True:
            async with session.get(f"/api/runs/{run_id}/", headers=auth) as response:
                response.raise_for_status()
                run = await response.json()
            terminal = RunStatus.is_terminal(run.get("status"))
            headers = dict(auth)
            if cursor.offset > 0:
                headers["Range"] = f"bytes={cursor.offset}-"
            async with session.get(f"/api/runs/{run_id}/log/", headers=headers) as response:
                body = await response.read()
                status = response.status
                content_range = response.headers.get("Content-Range", "")
            if status != 416:
                if status >= 400:
                    raise RuntimeError(f"log GET answered {status}")
                base = int(content_range.split()[1].split("-")[0]) if status == 206 else 0
                entries, cursor = parse_log_tail(body, base, cursor, final=terminal)
                for entry in entries:
                    level, text = format_log_entry(entry)
                    log.log(level, "%s", text)
            if terminal:
                return {"status": run.get("status"), "seen_at": time.time()}
            await asyncio.sleep(poll_interval)
