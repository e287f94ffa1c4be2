"""4. Watching many runs: N ``DataMasqueRunTrigger`` in one event loop, and the design it beat.

Two designs for the trigger's I/O, both through the provider's own request/retry/parsing code:

- ``async`` (shipped): ``DataMasqueRunTrigger`` as it is, aiohttp on the event loop, one shared
  session and login per Airflow connection, first polls spread over the poll interval.
- ``thread`` (the alternative, kept here only for the comparison): ``ThreadOffloadTrigger`` below,
  the sync hook in ``asyncio.to_thread``, one hook and ``requests.Session`` per trigger.

N runs end at staggered times (each run gets its own duration in the emulator). All N watchers
start at once in one ``asyncio`` loop, one task per loop turn as Airflow's triggerer creates them,
with a ticker task that sleeps 1 ms and records how late it wakes (the longest event-loop stall)
and how much CPU the loop thread used meanwhile (``time.thread_time``), and of that how much went to
garbage collection: a late tick with little CPU behind it is the OS running something else, not
work on the loop. On a machine with two or more CPUs the emulator is pinned to half of them and
this process to the other half, as a real DataMasque would not share the triggerer's CPUs. The event delay is the time from the run's end (emulator
``end_time``) to the watcher's event. Memory per watcher is measured in a separate pass with
``tracemalloc`` (it would distort the timings). The triggers' logger is swapped for a WARNING-level
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
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger
from benchmarks._common import BenchOutput, RemoteEmulator, Result, RssSampler, pinned, split_cpus

#: The shipped design first, then the alternative it is measured against.
DESIGNS = ("async", "thread")

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
    heap_gc_ms: float
    busy_ms: float  # longest loop-thread CPU time between two ticks (the loop busy, GC included)
    busy_no_gc_ms: float  # the same without garbage collection: the triggers' and asyncio's own work
    full_gcs: int  # full (generation 2) collections during the run
    young_gc_ms: float  # longest generation 0-1 collection
    full_gc_ms: float  # longest full collection (0 when none ran)
    worst: tuple[float, float, float]  # the longest stall: (wall ms, loop CPU ms, of which GC ms)
    pinned: bool
    kb_per_watcher: float = float("nan")

    @property
    def max_delay(self) -> float:
        return max(self.delays) if self.delays else float("inf")

    @property
    def median_delay(self) -> float:
        return statistics.median(self.delays) if self.delays else float("inf")


#: One ticker sample: (loop time at wake-up, lateness, loop-thread CPU since the last wake-up, of
#: which garbage collection) in seconds.
Tick = tuple[float, float, float, float]


async def _ticker(stop: asyncio.Event, ticks: list[Tick], pauses: GcPauses) -> None:
    """Sleep 1 ms at a time; record how late each wake-up is and what the loop thread did meanwhile.

    ``time.thread_time`` is the loop thread's own CPU time: a late wake-up with little CPU behind it
    means the thread was off the CPU (the OS ran something else), not that the loop was busy.
    """
    loop = asyncio.get_running_loop()
    clock = time.thread_time
    while not stop.is_set():
        start, cpu, collected = loop.time(), clock(), pauses.total
        await asyncio.sleep(0.001)
        now = loop.time()
        ticks.append((now, now - start - 0.001, clock() - cpu, pauses.total - collected))


class GcPauses:
    """Garbage-collection passes while installed: the longest young (generation 0-1) and full
    (generation 2) ones, their total, and how many full ones ran."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_young = 0.0
        self.longest_full = 0.0
        self.total = 0.0
        self.full = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.longest = max(self.longest, pause)
        self.total += pause
        if info.get("generation") == 2:
            self.full += 1
            self.longest_full = max(self.longest_full, pause)
        else:
            self.longest_young = max(self.longest_young, pause)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class ThreadOffloadTrigger(DataMasqueRunTrigger):
    """The other design, for this comparison only: the sync hook's calls in ``asyncio.to_thread``.

    One hook (with its own ``requests.Session``, pool and login) per trigger, built off the loop;
    each poll is ``RunMonitor.fetch`` in the default executor, log lines emitted on the loop. This
    is how the trigger worked before the native-async transport.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
        from airflow_provider_datamasque.hooks.runs import RunStatus
        from airflow_provider_datamasque.monitor import RunMonitor

        def make_monitor() -> RunMonitor:
            hook = DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)
            hook.client  # noqa: B018 - reads the Airflow connection off the loop
            monitor = RunMonitor(hook, self.run_id, self.log, stream_logs=self.stream_logs)
            monitor.restore(self.monitor_state)
            return monitor

        monitor = await asyncio.to_thread(make_monitor)
        try:
            while True:
                monitor.emit(*await asyncio.to_thread(monitor.fetch))
                if RunStatus.is_terminal(monitor.status):
                    outcome = "success" if RunStatus.is_success(monitor.status) else "failed"
                    yield self._event(outcome, monitor, monitor.summary())
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            if isinstance(monitor.hook, DataMasqueHook):
                monitor.hook.close()


#: The triggers' logger here: run-log lines are not formatted or written (Airflow's logging set-up
#: would otherwise print each at INFO), so the figures are the triggers' own work.
_QUIET_LOG = logging.getLogger("benchmarks.trigger")
_QUIET_LOG.setLevel(logging.WARNING)


def _watcher(design: str, run_id: int, poll_interval: float) -> Callable[[], Coroutine[Any, Any, float]]:
    cls = DataMasqueRunTrigger if design == "async" else ThreadOffloadTrigger
    trigger = cls(run_id, poll_interval=poll_interval, stream_logs=True)
    trigger._log = _QUIET_LOG  # type: ignore[assignment]

    async def watch() -> float:
        async for event in trigger.run():
            if event.payload["status"] != "success":
                raise RuntimeError(f"run {run_id}: {event.payload}")
            return time.time()
        raise RuntimeError(f"run {run_id}: trigger ended without an event")

    return watch


def _watchers(
    design: str, created: list[dict[str, Any]], poll_interval: float
) -> list[Callable[[], Coroutine[Any, Any, float]]]:
    return [_watcher(design, run["id"], poll_interval) for run in created]


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
        watchers = _watchers(design, created, poll_interval)

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
    ours, theirs = split_cpus() or (None, None)
    with RemoteEmulator(cpus=theirs) as emu, pinned(ours):
        durations = [first_end + rng.uniform(0, spread) for _ in range(n)]
        created = emu.call("create_runs", names=[f"w{i}" for i in range(n)], durations=durations)
        connections_before = emu.connections_accepted()
        gc_start = time.perf_counter()
        gc.collect()  # also the cost of one full GC pass over this process's heap, before any trigger
        heap_gc_ms = (time.perf_counter() - gc_start) * 1e3
        with RssSampler(interval=0.02) as rss:
            watchers = _watchers(design, created, poll_interval)
            ticks: list[Tick] = []

            # Generous: thread offload at N=1000 needs 75-80 s on 2 cores.
            time_limit = first_end + spread + 60 * poll_interval + 60

            async def main() -> list[Any]:
                stop = asyncio.Event()
                ticker = asyncio.create_task(_ticker(stop, ticks, pauses))
                try:
                    tasks = []
                    for watch in watchers:
                        # As Airflow's triggerer starts them (TriggerRunner.create_triggers, 2.11
                        # and 3.x): one task per event-loop turn, not all N in one turn.
                        await asyncio.sleep(0)
                        tasks.append(asyncio.create_task(watch()))
                    return await asyncio.wait_for(
                        asyncio.gather(*tasks, return_exceptions=True), timeout=time_limit
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
    late = sorted(tick[1] for tick in ticks)
    # Steady state: after every watcher has logged in and polled once (two poll intervals in).
    steady = [tick[1] for tick in ticks if tick[0] - loop_start > 2 * poll_interval]
    worst = max(ticks, key=lambda tick: tick[1], default=(0.0, float("nan"), float("nan"), float("nan")))
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
        heap_gc_ms=heap_gc_ms,
        busy_ms=max((tick[2] for tick in ticks), default=float("nan")) * 1e3,
        busy_no_gc_ms=max((tick[2] - tick[3] for tick in ticks), default=float("nan")) * 1e3,
        full_gcs=pauses.full,
        young_gc_ms=pauses.longest_young * 1e3,
        full_gc_ms=pauses.longest_full * 1e3,
        worst=(worst[1] * 1e3, worst[2] * 1e3, worst[3] * 1e3),
        pinned=ours is not None,
    )


def idle_floor(seconds: float) -> tuple[float, float]:
    """(longest, p99) stall in ms of the ticker alone, pinned as in a scenario, with the emulator
    running and no trigger: the machine's own floor (timer slack, the OS, the hypervisor)."""
    ours, theirs = split_cpus() or (None, None)
    ticks: list[Tick] = []
    pauses = GcPauses()

    async def main() -> None:
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(stop, ticks, pauses))
        await asyncio.sleep(seconds)
        stop.set()
        await ticker

    with RemoteEmulator(cpus=theirs), pinned(ours), pauses:
        asyncio.run(main())
    late = sorted(tick[1] for tick in ticks)
    return late[-1] * 1e3, late[int(len(late) * 0.99)] * 1e3


def warm_up() -> None:
    """Import and initialise both designs' lazy parts once, so no measured scenario pays for them."""
    for design in DESIGNS:
        scenario(design, 3, 0.2, 0.1, 0.3)


WHY = {
    "longest stall ms": "with threads, the loop competes for the GIL with up to min(32, cpu+4) workers "
    "driving requests (each may hold it for the 5 ms switch interval) and N hooks are built in one burst",
    "stall after start-up ms": "steady polling on the loop is short callbacks; threads keep taking the GIL",
    "heap KB/watcher": "one shared aiohttp session, pool and login per connection instead of a hook, "
    "requests.Session, urllib3 pool and socket per trigger",
    "max delay s": "polls never queue for the bounded default executor, which cannot clear N x 2 blocking "
    "GETs per poll interval once N is large",
}


def _stall_cause(a: Scenario) -> str:
    """Why the shipped design still stalled, from what was measured (not a fixed story)."""
    wall, cpu, collected = a.worst
    parts = [
        f"The longest stall: {wall:.1f} ms, of which the loop thread ran {cpu:.1f} ms "
        f"({collected:.1f} ms of it garbage collection) and was off the CPU {max(0.0, wall - cpu - 1):.1f} ms."
    ]
    if cpu < 0.5 * wall:
        parts.append(
            "So the loop was not busy: the OS ran other work on this process's CPU (the emulator is "
            "pinned to the other one), which no trigger design can prevent; "
            f"the longest stretch of loop work between two ticks was {a.busy_no_gc_ms:.1f} ms without GC. "
            "What would close it: a CPU the OS gives the triggerer alone (a dedicated core or cpuset, "
            "or a host with fewer neighbours); the floor row shows this 2-core machine stalling an "
            "empty loop too."
        )
    elif collected >= 0.5 * wall and a.full_gc_ms >= 0.5 * wall:
        parts.append(
            f"Most of it is a full GC pass ({a.full_gc_ms:.0f} ms): one over this process's heap takes "
            f"{a.heap_gc_ms:.0f} ms with no trigger running (Airflow's own objects), so any design stalls "
            f"that long whenever CPython runs one ({a.full_gcs} ran during the run). They come when enough "
            "objects have outlived young collections; fewer objects kept per poll make them rarer, and a "
            "process-wide gc.freeze() after start-up, the triggerer's call and not a provider's, would "
            "avoid them."
        )
    elif collected >= 0.5 * wall:
        parts.append(
            f"Most of it is a young-generation GC pass (longest {a.young_gc_ms:.1f} ms): between polls each "
            "sleeping trigger holds the objects of its last poll and its timer (a timer handle, future, "
            "context copy and awaiting coroutine: asyncio's, not the provider's), so with N triggers "
            "generations 0-1 hold thousands of live objects that every such pass walks. What would "
            "close it: fewer live objects per sleeping trigger, e.g. one shared timer waking every "
            "trigger due in the same tick instead of one asyncio.sleep each (not built)."
        )
    else:
        parts.append(
            "The loop was busy: answers that arrive together (up to the pool's "
            "socket limit) are handled in one loop turn, each costing aiohttp's parsing and the poll's "
            "bookkeeping; a smaller pool bounds the turn but slows a poll round."
        )
    return " ".join(parts)


def _compare(a: Scenario, t: Scenario) -> list[tuple[str, bool, float, float]]:
    """(figure, async won, async value, thread value); lower is better for every figure."""
    figures = (
        ("longest stall ms", a.max_stall_ms, t.max_stall_ms),
        ("stall after start-up ms", a.steady_stall_ms, t.steady_stall_ms),
        ("heap KB/watcher", a.kb_per_watcher, t.kb_per_watcher),
        ("max delay s", a.max_delay, t.max_delay),
    )
    return [(label, av <= tv, av, tv) for label, av, tv in figures]


def decision(by_key: dict[tuple[str, int], Scenario], sizes: list[int]) -> str:
    """Which design won, figure by figure, and why: the record the issue asks for."""
    lines = [
        "Design choice: native async (shipped) vs thread offload (`ThreadOffloadTrigger`, benchmark only)."
    ]
    won: set[str] = set()
    lost: list[str] = []
    for n in sizes:
        rows = _compare(by_key[("async", n)], by_key[("thread", n)])
        lines.append(
            f"N={n}: "
            + "; ".join(
                f"{label}: {'async' if ok else 'thread'} wins ({av:.2f} vs {tv:.2f})"
                for label, ok, av, tv in rows
            )
        )
        won.update(label for label, ok, _, _ in rows if ok)
        lost.extend(f"{label} at N={n}" for label, ok, _, _ in rows if not ok)
    verdict = "Native async won every figure" if not lost else f"Native async lost on {', '.join(lost)}"
    reasons = "; ".join(f"{label}: {WHY[label]}" for label in WHY if label in won)
    lines.append(f"{verdict}. Why: {reasons}." if reasons else f"{verdict}.")
    return "\n\n".join(lines)


def run(quick: bool = False) -> BenchOutput:
    from airflow_provider_datamasque.hooks.async_client import POOL_LIMIT

    sizes = [50, 100] if quick else [200, 1000]
    poll_interval = 1.0 if quick else 2.0
    output = BenchOutput()
    logging.getLogger("benchmarks").setLevel(logging.WARNING)
    table = [
        "| design | N | max stall ms | p99 stall ms | max stall after start-up ms "
        "| longest loop work between ticks ms | same without GC ms | longest GC pause ms | full GCs "
        "| full GC before the run ms "
        "| heap KB/watcher (tracemalloc) | RSS growth KB/watcher | median delay s | max delay s | missing "
        "| TCP conns | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key: dict[tuple[str, int], Scenario] = {}
    warm_up()
    floor_s = 5.0 if quick else 15.0
    floor_max, floor_p99 = idle_floor(floor_s)
    output.results.append(
        Result(
            "many_triggers",
            f"event-loop stall with no trigger running ({floor_s:g} s, same pinning): the machine's floor",
            "informational",
            f"{floor_max:.1f} ms (p99 {floor_p99:.2f})",
            None,
        )
    )
    for n in sizes:
        spread = 3.0 if quick else 5.0
        first_end = 3.0 if quick else (5.0 if n <= 200 else 8.0)
        for design in DESIGNS:
            s = scenario(design, n, poll_interval, spread, first_end)
            s.kb_per_watcher = memory_per_watcher(design, n, poll_interval)
            by_key[(design, n)] = s
            table.append(
                f"| {design} | {n} | {s.max_stall_ms:.1f} | {s.p99_stall_ms:.2f} | {s.steady_stall_ms:.1f} | "
                f"{s.busy_ms:.1f} | {s.busy_no_gc_ms:.1f} | {s.max_gc_ms:.1f} | {s.full_gcs} | {s.heap_gc_ms:.1f} | {s.kb_per_watcher:.1f} | {s.rss_kb_per_watcher:.1f} | "
                f"{s.median_delay:.2f} | {s.max_delay:.2f} | {s.missing} | {s.connections} | {s.wall:.1f} |"
            )
    goal_delay = GOAL_DELAY_INTERVALS * poll_interval
    for n in sizes:
        a, t = by_key[("async", n)], by_key[("thread", n)]
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: longest event-loop stall (shipped async trigger vs thread offload)",
                f"< {GOAL_STALL_MS:.0f} ms",
                f"{a.max_stall_ms:.1f} ms (after start-up {a.steady_stall_ms:.1f}, p99 {a.p99_stall_ms:.2f}; "
                f"longest loop work between ticks {a.busy_ms:.1f}, {a.busy_no_gc_ms:.1f} without GC); "
                f"thread offload {t.max_stall_ms:.1f} ms (after start-up {t.steady_stall_ms:.1f}, "
                f"p99 {t.p99_stall_ms:.2f})",
                a.max_stall_ms < GOAL_STALL_MS,
            )
        )
        ratio = t.kb_per_watcher / a.kb_per_watcher if a.kb_per_watcher > 0 else float("nan")
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: memory per trigger (Python heap, tracemalloc over {min(n, MEMORY_SAMPLE)} live watchers)",
                f"< {GOAL_KB_PER_WATCHER:.0f} KB",
                f"{a.kb_per_watcher:.1f} KB; thread offload {t.kb_per_watcher:.1f} KB ({ratio:.1f}x); "
                f"RSS growth during the timed run {a.rss_kb_per_watcher:.1f} vs {t.rss_kb_per_watcher:.1f} KB",
                a.kb_per_watcher < GOAL_KB_PER_WATCHER,
            )
        )
        output.results.append(
            Result(
                "many_triggers",
                f"N={n}: run end -> event, max (median), poll {poll_interval:g} s",
                f"< {goal_delay:g} s (2 poll intervals)",
                f"{a.max_delay:.2f} s ({a.median_delay:.2f}); thread offload {t.max_delay:.2f} s "
                f"({t.median_delay:.2f}); missing {a.missing}/{t.missing}",
                a.max_delay < goal_delay and a.missing == 0,
            )
        )
        if a.max_stall_ms >= GOAL_STALL_MS:
            output.misses.append(
                f"many_triggers N={n}: longest loop stall {a.max_stall_ms:.1f} ms (p99 {a.p99_stall_ms:.2f} ms, "
                f"after start-up {a.steady_stall_ms:.1f} ms) >= {GOAL_STALL_MS:.0f} ms; thread offload "
                f"{t.max_stall_ms:.1f} ms; the same loop with no trigger running stalled up to "
                f"{floor_max:.1f} ms. {_stall_cause(a)}"
            )
        if a.kb_per_watcher >= GOAL_KB_PER_WATCHER:
            output.misses.append(
                f"many_triggers N={n}: {a.kb_per_watcher:.0f} KB per trigger although triggers share "
                "one session: the rest is each trigger's coroutine, monitor and last answers."
            )
        if a.max_delay >= goal_delay or a.missing:
            output.misses.append(
                f"many_triggers N={n}: worst run end -> event {a.max_delay:.2f} s >= {goal_delay:g} s "
                f"(missing {a.missing}). Cause: N x 2 GETs per poll interval share one pool of "
                f"{POOL_LIMIT} sockets and the one emulator process, so a poll round can outlast the interval."
            )
    output.details.append(decision(by_key, sizes))
    output.details.append("Per scenario (many_triggers):\n\n" + "\n".join(table))
    return output
