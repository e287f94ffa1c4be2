"""4. Watching many runs: N ``DataMasqueRunTrigger`` in one event loop, against a native-async poller.

N runs on N connections end at staggered times (each run gets its own duration in the emulator).
All N watchers start together in one ``asyncio`` loop with a ticker task that sleeps 1 ms and records
how late it wakes (the longest event-loop stall). The event delay is the time from the run's end
(emulator ``end_time``) to the watcher's event. Memory per watcher is measured in a separate pass
with ``tracemalloc`` (it would distort the timings). The same scenarios then run with
``async_poller.watch_run`` (aiohttp on the loop). The trigger's logger is swapped for a WARNING-level
stdlib logger so log formatting is not what gets measured.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import async_poller
from benchmarks._common import BenchOutput, RemoteEmulator, Result, RssSampler

GOAL_STALL_MS = 5.0
GOAL_KB_PER_WATCHER = 100.0
GOAL_DELAY_INTERVALS = 2.0
MEMORY_SAMPLE = 200


@dataclass
class Scenario:
    design: str
    n: int
    poll_interval: float
    max_stall_ms: float
    p99_stall_ms: float
    steady_stall_ms: float
    max_gc_ms: float
    rss_kb_per_watcher: float
    delays: list[float]
    missing: int
    wall: float
    connections: int
    kb_per_watcher: float = float("nan")

    @property
    def max_delay(self) -> float:
        return max(self.delays) if self.delays else float("inf")

    @property
    def median_delay(self) -> float:
        return statistics.median(self.delays) if self.delays else float("inf")


async def _ticker(stop: asyncio.Event, lateness: list[tuple[float, float]]) -> None:
    """Sleep 1 ms at a time; record (when, how late) for every wake-up."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.001)
        now = loop.time()
        lateness.append((now, now - start - 0.001))


class GcPauses:
    """Longest garbage-collection pause while installed."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._start)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def _trigger_watcher(run_id: int, poll_interval: float) -> Callable[[], Awaitable[float]]:
    from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

    trigger = DataMasqueRunTrigger(run_id, poll_interval=poll_interval, stream_logs=True)
    trigger._log = logging.getLogger("benchmarks.trigger")  # type: ignore[assignment]

    async def watch() -> float:
        async for event in trigger.run():
            if event.payload["status"] != "success":
                raise RuntimeError(f"run {run_id}: {event.payload}")
            return time.time()
        raise RuntimeError(f"run {run_id}: trigger ended without an event")

    return watch


def _async_watcher(emu: RemoteEmulator, run_id: int, poll_interval: float) -> Callable[[], Awaitable[float]]:
    async def watch() -> float:
        result = await async_poller.watch_run(
            emu.url, emu.info["username"], emu.info["password"], run_id, poll_interval
        )
        if result["status"] != "finished":
            raise RuntimeError(f"run {run_id}: {result}")
        return float(result["seen_at"])

    return watch


def _watchers(
    design: str, emu: RemoteEmulator, created: list[dict[str, Any]], poll_interval: float
) -> list[Callable[[], Awaitable[float]]]:
    if design == "trigger":
        return [_trigger_watcher(run["id"], poll_interval) for run in created]
    return [_async_watcher(emu, run["id"], poll_interval) for run in created]


def memory_per_watcher(design: str, n: int, poll_interval: float) -> float:
    """Python heap (tracemalloc) held per live watcher once every one has polled at least once (KB).

    Runs last an hour here; the watchers are cancelled right after the measurement. At most
    ``MEMORY_SAMPLE`` watchers are traced: under tracemalloc 1000 triggers take minutes to poll once.
    """
    n = min(n, MEMORY_SAMPLE)
    with RemoteEmulator() as emu:
        created = emu.call("create_runs", names=[f"m{i}" for i in range(n)], durations=[3600.0] * n)
        log_paths = r"/api/runs/\d+/log/"
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        watchers = _watchers(design, emu, created, poll_interval)

        async def main() -> int:
            tasks = [asyncio.create_task(watch()) for watch in watchers]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                done = await asyncio.to_thread(emu.call, "count_requests", method="GET", path_regex=log_paths)
                if done >= n:
                    break
            current = tracemalloc.get_traced_memory()[0]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return current

        current = asyncio.run(main())
        tracemalloc.stop()
    return (current - base) / n / 1024


def scenario(design: str, n: int, poll_interval: float, spread: float, first_end: float) -> Scenario:
    rng = random.Random(n)
    pauses = GcPauses()
    with RemoteEmulator() as emu:
        durations = [first_end + rng.uniform(0, spread) for _ in range(n)]
        created = emu.call("create_runs", names=[f"w{i}" for i in range(n)], durations=durations)
        connections_before = emu.connections_accepted()
        gc.collect()
        with RssSampler(interval=0.02) as rss:
            watchers = _watchers(design, emu, created, poll_interval)
            lateness: list[tuple[float, float]] = []

            async def main() -> list[Any]:
                stop = asyncio.Event()
                ticker = asyncio.create_task(_ticker(stop, lateness))
                try:
                    return await asyncio.wait_for(
                        asyncio.gather(*(watch() for watch in watchers), return_exceptions=True),
                        timeout=first_end + spread + 20 * poll_interval + 30,
                    )
                finally:
                    stop.set()
                    await ticker

            start = time.perf_counter()
            loop_start = time.monotonic()  # asyncio's loop.time() is time.monotonic()
            with pauses:
                outcomes = asyncio.run(main())
            wall = time.perf_counter() - start
        connections = emu.connections_accepted() - connections_before
    delays = [
        seen - run["end_wall"] for seen, run in zip(outcomes, created, strict=True) if isinstance(seen, float)
    ]
    errors = [o for o in outcomes if not isinstance(o, float)]
    if errors:
        logging.getLogger("benchmarks").warning(
            "%s n=%d: %d watchers failed, first: %r", design, n, len(errors), errors[0]
        )
    late = sorted(value for _, value in lateness)
    # Steady state: after every watcher has logged in and polled once (two poll intervals in).
    steady = [value for when, value in lateness if when - loop_start > 2 * poll_interval]
    return Scenario(
        design=design,
        n=n,
        poll_interval=poll_interval,
        max_stall_ms=late[-1] * 1e3 if late else float("nan"),
        p99_stall_ms=late[int(len(late) * 0.99)] * 1e3 if late else float("nan"),
        steady_stall_ms=max(steady) * 1e3 if steady else float("nan"),
        max_gc_ms=pauses.longest * 1e3,
        rss_kb_per_watcher=rss.growth / n / 1024,
        delays=delays,
        missing=len(errors),
        wall=wall,
        connections=connections,
    )


def warm_up() -> None:
    """Import and initialise both designs' lazy parts once, so no measured scenario pays for them."""
    for design in ("trigger", "aiohttp"):
        scenario(design, 3, 0.2, 0.1, 0.3)


def _winner(t: Scenario, a: Scenario) -> str:
    parts = []
    for label, tv, av in (
        ("longest stall ms", t.max_stall_ms, a.max_stall_ms),
        ("stall after start-up ms", t.steady_stall_ms, a.steady_stall_ms),
        ("heap KB/watcher", t.kb_per_watcher, a.kb_per_watcher),
        ("max delay s", t.max_delay, a.max_delay),
    ):
        parts.append(f"{label}: {'trigger' if tv <= av else 'aiohttp'} wins ({tv:.2f} vs {av:.2f})")
    return "; ".join(parts)


def run(quick: bool = False) -> BenchOutput:
    sizes = [50, 100] if quick else [200, 1000]
    poll_interval = 1.0 if quick else 2.0
    output = BenchOutput()
    logging.getLogger("benchmarks").setLevel(logging.WARNING)
    table = [
        "| design | N | max stall ms | p99 stall ms | max stall after start-up ms | longest GC pause ms "
        "| heap KB/watcher (tracemalloc) | RSS growth KB/watcher | median delay s | max delay s | missing "
        "| TCP conns | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key: dict[tuple[str, int], Scenario] = {}
    warm_up()
    for n in sizes:
        spread = 3.0 if quick else 5.0
        first_end = 3.0 if quick else (5.0 if n <= 200 else 8.0)
        for design in ("trigger", "aiohttp"):
            s = scenario(design, n, poll_interval, spread, first_end)
            s.kb_per_watcher = memory_per_watcher(design, n, poll_interval)
            by_key[(design, n)] = s
            table.append(
                f"| {design} | {n} | {s.max_stall_ms:.1f} | {s.p99_stall_ms:.2f} | {s.steady_stall_ms:.1f} | "
                f"{s.max_gc_ms:.1f} | {s.kb_per_watcher:.1f} | {s.rss_kb_per_watcher:.1f} | "
                f"{s.median_delay:.2f} | {s.max_delay:.2f} | {s.missing} | {s.connections} | {s.wall:.1f} |"
            )
    goal_delay = GOAL_DELAY_INTERVALS * poll_interval
    for n in sizes:
        t, a = by_key[("trigger", n)], by_key[("aiohttp", n)]
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: longest event-loop stall (trigger vs aiohttp)",
                f"< {GOAL_STALL_MS:.0f} ms",
                f"{t.max_stall_ms:.1f} ms (after start-up {t.steady_stall_ms:.1f}, p99 {t.p99_stall_ms:.2f}); "
                f"aiohttp {a.max_stall_ms:.1f} ms (after start-up {a.steady_stall_ms:.1f}); "
                f"ratio {t.max_stall_ms / a.max_stall_ms:.2f}",
                t.max_stall_ms < GOAL_STALL_MS,
            )
        )
        ratio = t.kb_per_watcher / a.kb_per_watcher if a.kb_per_watcher > 0 else float("nan")
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: memory per trigger (Python heap, tracemalloc over {min(n, MEMORY_SAMPLE)} live watchers)",
                f"< {GOAL_KB_PER_WATCHER:.0f} KB",
                f"{t.kb_per_watcher:.1f} KB; aiohttp {a.kb_per_watcher:.1f} KB (ratio {ratio:.2f}); "
                f"RSS growth during the timed run {t.rss_kb_per_watcher:.1f} vs {a.rss_kb_per_watcher:.1f} KB",
                t.kb_per_watcher < GOAL_KB_PER_WATCHER,
            )
        )
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: run end -> event, max (median), poll {poll_interval:g} s",
                f"< {goal_delay:g} s (2 poll intervals)",
                f"{t.max_delay:.2f} s ({t.median_delay:.2f}); aiohttp {a.max_delay:.2f} s "
                f"({a.median_delay:.2f}); missing {t.missing}/{a.missing}",
                t.max_delay < goal_delay and t.missing == 0,
            )
        )
        output.details.append(f"N={n}: {_winner(t, a)}")
        if t.max_stall_ms >= GOAL_STALL_MS:
            output.misses.append(
                f"many_triggers N={n}: longest loop stall {t.max_stall_ms:.1f} ms (p99 {t.p99_stall_ms:.2f} ms, "
                f"after start-up {t.steady_stall_ms:.1f} ms, longest GC pause {t.max_gc_ms:.1f} ms) "
                f">= {GOAL_STALL_MS:.0f} ms; aiohttp {a.max_stall_ms:.1f} ms (after start-up "
                f"{a.steady_stall_ms:.1f} ms). Cause: the loop thread competes for the GIL with the "
                "to_thread workers (driving requests, parsing JSON; the GIL switch interval is 5 ms, so "
                "each worker holding it can delay the loop by up to that); start-up builds N hooks and "
                "sessions and logs in N times in one burst; GC passes over N watchers' objects run on "
                "the loop thread. On this 2-core machine other processes also take the CPU."
            )
        if t.kb_per_watcher >= GOAL_KB_PER_WATCHER:
            output.misses.append(
                f"many_triggers N={n}: {t.kb_per_watcher:.0f} KB per trigger: each trigger owns a hook, "
                "a requests.Session with its own urllib3 pool, and a kept-alive socket."
            )
        if t.max_delay >= goal_delay or t.missing:
            output.misses.append(
                f"many_triggers N={n}: worst run end -> event {t.max_delay:.2f} s >= {goal_delay:g} s "
                f"(missing {t.missing}). Cause: polls of N triggers queue for the default executor "
                "(min(32, cpu+4) threads), so a round of N x 2 GETs can outlast the poll interval."
            )
    output.details.append("Per scenario (many_triggers):\n\n" + "\n".join(table))
    return output
