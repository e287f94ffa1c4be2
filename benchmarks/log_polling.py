"""3. Watching one run: ``get_run_log_since`` with a cursor while a 10,000-line log grows.

Per poll it records the HTTP requests the emulator saw for the log, the bytes received and the CPU
time (``time.process_time``; the emulator is another process, so this is the client alone) spent in
``parse_log_tail`` finding the new lines. Alongside, each poll also fetches the whole log and times
the naive way (``json.loads`` of the full body, then slicing off what was seen), outside the hook's
figures. Cursor cost should follow the new lines; the naive cost follows the whole log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

import airflow_provider_datamasque.hooks.runs as runs_module
from benchmarks._common import BenchOutput, RemoteEmulator, Result, new_hook

MAX_LATE_EARLY = 1.5  # "proportional": per-new-line cost late in the run within 1.5x of early


@dataclass
class Poll:
    new_lines: int
    body_bytes: int
    requests: int
    cursor_cpu: float
    full_lines: int
    full_bytes: int
    full_cpu: float


def _instrument() -> tuple[list[tuple[int, float]], Callable[[], None]]:
    """Wrap ``parse_log_tail`` where ``get_run_log_since`` looks it up; record (bytes, CPU s)."""
    original = runs_module.parse_log_tail
    calls: list[tuple[int, float]] = []

    def timed(body: bytes, base: int, cursor: Any, *, final: bool = False) -> Any:
        start = time.process_time()
        result = original(body, base, cursor, final=final)
        calls.append((len(body), time.process_time() - start))
        return result

    runs_module.parse_log_tail = timed  # type: ignore[assignment]

    def restore() -> None:
        runs_module.parse_log_tail = original

    return calls, restore


def run(quick: bool = False) -> BenchOutput:
    lines = 2000 if quick else 10000
    seconds = 4.0 if quick else 10.0
    interval = 0.2
    output = BenchOutput()
    calls, restore = _instrument()
    polls: list[Poll] = []
    try:
        with RemoteEmulator(run_seconds=seconds) as emu:
            run_id = emu.call(
                "create_runs", names=[f"watch [emulator:log_lines={lines}]"], durations=[seconds]
            )[0]["id"]
            hook = new_hook()
            token = hook.client._auth_header()["Authorization"]
            full = requests.Session()
            full.headers["Authorization"] = token
            log_url = hook.client.url(f"/api/runs/{run_id}/log/")
            log_path = f"/api/runs/{run_id}/log/"
            cursor = runs_module.LogCursor()
            seen_full = 0
            terminal = False
            while True:
                status = hook.get_run(run_id)["status"]
                terminal = runs_module.RunStatus.is_terminal(status)
                before = emu.call("count_requests", method="GET", path_regex=log_path)
                n_calls = len(calls)
                entries, cursor = hook.get_run_log_since(run_id, cursor, final=terminal)
                requests_seen = emu.call("count_requests", method="GET", path_regex=log_path) - before
                body_bytes = sum(size for size, _ in calls[n_calls:])
                cpu = sum(cost for _, cost in calls[n_calls:])
                body = full.get(log_url, timeout=30).content
                start = time.process_time()
                everything = json.loads(body)
                new_full = everything[seen_full:]
                full_cpu = time.process_time() - start
                seen_full = len(everything)
                if entries or new_full:
                    polls.append(
                        Poll(len(entries), body_bytes, requests_seen, cpu, len(new_full), len(body), full_cpu)
                    )
                if terminal:
                    break
                time.sleep(interval)
            hook.close()
            full.close()
    finally:
        restore()
    total_new = sum(p.new_lines for p in polls)
    cursor_cpu = sum(p.cursor_cpu for p in polls)
    full_cpu = sum(p.full_cpu for p in polls)
    # Early vs late: the polls covering the first and the last third of the log.
    third = max(1, len(polls) // 3)
    early, late = polls[:third], polls[-third:]

    def per_line(group: list[Poll], attr: str) -> float:
        n = sum(p.new_lines for p in group) or 1
        return sum(getattr(p, attr) for p in group) / n

    early_cursor, late_cursor = per_line(early, "cursor_cpu"), per_line(late, "cursor_cpu")
    early_full, late_full = per_line(early, "full_cpu"), per_line(late, "full_cpu")
    ratio = late_cursor / early_cursor if early_cursor else float("inf")
    last = polls[-1]
    max_requests = max(p.requests for p in polls)
    mean_bytes_per_line = sum(p.body_bytes for p in polls) / max(total_new, 1)
    output.results.append(
        Result(
            "log_polling",
            "per-new-line parse CPU, late third / early third (cursor)",
            f"<= {MAX_LATE_EARLY} (cost follows new lines)",
            f"{ratio:.2f} ({early_cursor * 1e6:.2f} -> {late_cursor * 1e6:.2f} us/line); "
            f"whole-log re-parse: {late_full / early_full if early_full else float('nan'):.1f} "
            f"({early_full * 1e6:.1f} -> {late_full * 1e6:.1f} us/line)",
            ratio <= MAX_LATE_EARLY,
            f"{len(polls)} polls, {total_new} lines",
        )
    )
    output.results.append(
        Result(
            "log_polling",
            "parse CPU for the whole run, cursor vs whole-log re-parse each poll",
            "cursor < re-parse",
            f"{cursor_cpu * 1e3:.1f} ms vs {full_cpu * 1e3:.1f} ms (ratio {cursor_cpu / full_cpu:.3f})",
            cursor_cpu < full_cpu,
        )
    )
    output.results.append(
        Result(
            "log_polling",
            f"last poll (log at {seen_full} lines): cursor vs whole-log re-parse",
            "cursor < re-parse",
            f"{last.cursor_cpu * 1e3:.2f} ms for {last.new_lines} new lines / {last.body_bytes} B vs "
            f"{last.full_cpu * 1e3:.2f} ms for {last.full_bytes} B",
            last.cursor_cpu < last.full_cpu,
        )
    )
    output.results.append(
        Result(
            "log_polling",
            "log requests per poll (max) and bytes received per new line",
            "1 request; bytes ~ line size",
            f"{max_requests} request(s); {mean_bytes_per_line:.0f} B/line "
            f"(re-fetching whole log: {sum(p.full_bytes for p in polls) / max(total_new, 1):.0f} B/line)",
            max_requests == 1,
        )
    )
    table = ["| poll | new lines | requests | bytes | cursor CPU ms | whole-log bytes | re-parse CPU ms |"]
    table.append("|---:|---:|---:|---:|---:|---:|---:|")
    for index, p in enumerate(polls, 1):
        table.append(
            f"| {index} | {p.new_lines} | {p.requests} | {p.body_bytes} | {p.cursor_cpu * 1e3:.3f} | "
            f"{p.full_bytes} | {p.full_cpu * 1e3:.3f} |"
        )
    output.details.append("Per poll (log_polling):\n\n" + "\n".join(table))
    if ratio > MAX_LATE_EARLY:
        output.misses.append(
            f"log_polling: per-new-line cursor cost grew {ratio:.2f}x from early to late polls; "
            "`parse_log_tail` is doing work proportional to the whole body."
        )
    if max_requests != 1:
        output.misses.append(
            f"log_polling: a poll took {max_requests} log requests (retries or a Range fallback)."
        )
    return output
