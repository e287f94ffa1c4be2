"""Shared pieces of the benchmark suite: results, machine facts, RSS sampling, an out-of-process emulator.

The emulator runs in a child process (``multiprocessing`` spawn) so that its CPU and its share of the
GIL never count against the code being measured: on a 2-core machine an in-process emulator would
compete with the client for the interpreter lock, inflating every client-side figure.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import multiprocessing
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any


@dataclass
class Result:
    """One figure: what it should be, what it was, and whether that meets the goal."""

    benchmark: str
    figure: str
    goal: str
    measured: str
    passed: bool | None  # None: informational, no goal
    notes: str = ""


@dataclass
class BenchOutput:
    """What a benchmark module returns: its figures plus free-form detail for RESULTS.md."""

    results: list[Result] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def machine_info() -> dict[str, str]:
    try:
        airflow_version = importlib.metadata.version("apache-airflow")
    except importlib.metadata.PackageNotFoundError:
        airflow_version = "not installed"
    return {
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "python": platform.python_version(),
        "airflow": airflow_version,
    }


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Samples this process's RSS in a thread; ``peak - baseline`` is the growth during the block."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


# ---- the emulator in a child process ----------------------------------------------------------


def _emulator_main(pipe: Connection, run_seconds: float, cpus: frozenset[int] | None) -> None:
    from benchmarks import _emuproc

    if cpus:
        os.sched_setaffinity(0, cpus)
    _emuproc.serve(pipe, run_seconds)


def split_cpus() -> tuple[frozenset[int], frozenset[int]] | None:
    """(CPUs for the code measured, CPUs for the emulator), or None when there are not two to split.

    A real DataMasque runs on its own machine; on a shared 2-core box the emulator's request handling
    would otherwise preempt the client's event loop and show up as the client's stall.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return frozenset(cpus[:half]), frozenset(cpus[half:])


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the block with this process (all its threads) on ``cpus``; restore the old set after."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    for tid in _thread_ids():
        os.sched_setaffinity(tid, cpus)
    try:
        yield
    finally:
        for tid in _thread_ids():
            with contextlib.suppress(OSError):  # a thread may have ended meanwhile
                os.sched_setaffinity(tid, before)


def _thread_ids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


class RemoteEmulator:
    """A ``DataMasqueEmulator`` in a spawned child process, driven over a pipe.

    ``call(name, **kwargs)`` runs ``benchmarks._emuproc.<name>(emulator, **kwargs)`` in the child;
    ``cpus`` keeps the child (and its threads) on those CPUs.
    """

    def __init__(self, run_seconds: float = 5.0, cpus: frozenset[int] | None = None) -> None:
        self.run_seconds = run_seconds
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_emulator_main, args=(child, run_seconds, cpus), daemon=True)
        self.info: dict[str, Any] = {}

    def __enter__(self) -> RemoteEmulator:
        self._process.start()
        self.info = self._pipe.recv()
        os.environ["AIRFLOW_CONN_DATAMASQUE_DEFAULT"] = self.info["connection_json"]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._pipe.send(("stop", {}))
            self._pipe.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def api_token(self) -> str:
        return str(self.info["api_token"])

    def call(self, name: str, **kwargs: Any) -> Any:
        self._pipe.send((name, kwargs))
        ok, value = self._pipe.recv()
        if not ok:
            raise RuntimeError(f"emulator call {name} failed: {value}")
        return value

    def connections_accepted(self) -> int:
        return int(self.call("connections_accepted"))


def new_hook() -> Any:
    """A fresh ``DataMasqueHook`` on ``datamasque_default`` (the env var set by ``RemoteEmulator``)."""
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    return DataMasqueHook()


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value
