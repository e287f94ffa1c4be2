"""``DataMasqueRunTrigger``: waits for a masking run in the triggerer, streaming its log lines.

HTTP runs natively on the event loop (aiohttp, ``hooks.async_client``) with the request building,
retries, re-login and error mapping the worker's hook uses, and one shared session and login per
connection for all triggers in the triggerer. Only reading the Airflow connection happens in a
worker thread (Airflow 3's triggerer forbids sync connection reads on the loop), through asgiref's
``sync_to_async`` as Airflow 3.0's triggerer needs (see ``hooks.async_client.off_loop``).
``benchmarks/many_triggers.py`` measures this design against polling through the sync hook in
``asyncio.to_thread``; see ``benchmarks/RESULTS.md`` for why it won.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import mask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_datamasque.hooks.client import is_transient
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueError,
    DataMasqueNotFoundError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.hooks.runs import RunStatus
from airflow_provider_datamasque.monitor import RunMonitor

if TYPE_CHECKING:
    from types import ModuleType

    from airflow_provider_datamasque.hooks.client import ClientConfig


#: Connection reads in flight, per event loop and connection id. Triggers that start together (a
#: triggerer picking up hundreds at once) wait for one read instead of queueing hundreds of threads;
#: nothing is kept once the read is done, so an edited connection is seen by the next trigger.
_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedRead]] = (
    weakref.WeakKeyDictionary()
)

#: Triggers woken per event-loop turn when a shared connection read ends: each goes on to set up its
#: watch, and waking hundreds in one turn would hold the loop for all of them.
WAKE_BATCH = 25


class _SharedRead:
    """One connection read for every trigger that asks while it runs; waiters wake a batch per turn."""

    def __init__(self, read: Awaitable[ClientConfig], done: Callable[[], object]) -> None:
        self._waiters: list[asyncio.Future[ClientConfig]] = []
        self._task = asyncio.ensure_future(self._run(read, done))

    async def _run(self, read: Awaitable[ClientConfig], done: Callable[[], object]) -> None:
        try:
            config: ClientConfig | None = await read
            error: BaseException | None = None
        except asyncio.CancelledError:
            for waiter in self._waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            config, error = None, exc
        finally:
            done()  # later triggers start a fresh read
        for index, waiter in enumerate(self._waiters):
            if index and index % WAKE_BATCH == 0:
                await asyncio.sleep(0)
            if waiter.done():  # that trigger was cancelled meanwhile
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(config)  # type: ignore[arg-type]

    def wait(self) -> asyncio.Future[ClientConfig]:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter


class DataMasqueRunTrigger(BaseTrigger):
    """Fires one event when run ``run_id`` ends, or at ``end_time`` (epoch seconds).

    :param run_id: DataMasque run id.
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.
    :param poll_interval: Seconds between status checks.
    :param end_time: Epoch seconds after which a ``timeout`` event is sent (None: wait for ever).
    :param stream_logs: Log the run's log lines as they appear.
    :param monitor_state: Log cursor and counts to carry on from (lines already logged stay logged).
    :param task_try: The try number of the task that deferred, echoed in every event as
        ``task_try``, so the task can tell an event meant for an earlier try (Airflow 3.0 resumes a
        retry with its earlier try's event).
    """

    def __init__(
        self,
        run_id: int,
        datamasque_conn_id: str = "datamasque_default",
        poll_interval: float = 30.0,
        end_time: float | None = None,
        stream_logs: bool = True,
        monitor_state: dict[str, Any] | None = None,
        task_try: int | None = None,
    ) -> None:
        super().__init__()
        self.run_id = int(run_id)
        self.datamasque_conn_id = datamasque_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.stream_logs = stream_logs
        self.monitor_state = monitor_state or {}
        self.task_try = task_try

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "datamasque_conn_id": self.datamasque_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "stream_logs": self.stream_logs,
                "monitor_state": self.monitor_state,
                "task_try": self.task_try,
            },
        )

    def _event(self, status: str, monitor: RunMonitor | None, message: str, **extra: Any) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "run_id": self.run_id,
            "run_status": monitor.status if monitor else None,
            "message": message,
            "monitor": monitor.state() if monitor else self.monitor_state,
            "task_try": self.task_try,
        }
        payload.update(extra)
        return TriggerEvent(payload)

    async def _config(self) -> ClientConfig:
        """The connection's settings, read in a worker thread (shared with triggers reading it now)."""
        off_loop = _transport().off_loop
        loop = asyncio.get_running_loop()
        pending = _reads.setdefault(loop, {})
        conn_id = self.datamasque_conn_id
        read = pending.get(conn_id)
        if read is None:
            read = pending[conn_id] = _SharedRead(
                off_loop(self._read_config), lambda: pending.pop(conn_id, None)
            )
        return await read.wait()

    def _read_config(self) -> ClientConfig:
        """The connection's client settings; reads the Airflow connection, so call it off the loop."""
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id).config

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            config = await self._config()
        except DataMasqueError as exc:
            yield self._event("error", None, f"Cannot watch DataMasque run {self.run_id}: {exc}")
            return
        transport = _transport()
        client = transport.acquire_client(config, mask_secret=mask_secret)
        monitor = RunMonitor(None, self.run_id, self.log, stream_logs=self.stream_logs)
        monitor.restore(self.monitor_state)
        failures = 0
        try:
            if client.users > 1:
                # Triggers started together (a backfill, a big DAG) would poll in lock-step; put
                # this one's first poll at a random point of the interval. A lone trigger polls at once.
                await asyncio.sleep(self._first_delay())
            while True:
                try:
                    entries, cursor = await monitor.fetch_async(client)
                    failures = 0
                except DataMasqueNotFoundError as exc:
                    yield self._event("error", monitor, f"DataMasque run {self.run_id} not found: {exc}")
                    return
                except (DataMasqueTransportError, DataMasqueApiError) as exc:
                    if not is_transient(exc):
                        yield self._event(
                            "error", monitor, f"Watching DataMasque run {self.run_id} failed: {exc}"
                        )
                        return
                    # Ride out outages: the client already retried; keep waiting with backoff.
                    failures += 1
                    wait = min(self.poll_interval, 2.0 ** min(failures, 6))
                    self.log.warning(
                        "DataMasque unreachable while watching run %s (%s); again in %.0fs",
                        self.run_id,
                        exc,
                        wait,
                    )
                    entries = None
                if entries is not None:
                    monitor.emit(entries, cursor)
                if entries is not None and RunStatus.is_terminal(monitor.status):
                    status = monitor.status
                    if RunStatus.is_success(status):
                        yield self._event("success", monitor, monitor.summary())
                    elif status == RunStatus.CANCELLED.value:
                        yield self._event("cancelled", monitor, monitor.failure_message())
                    else:
                        yield self._event("failed", monitor, monitor.failure_message())
                    return
                remaining = None if self.end_time is None else self.end_time - time.time()
                if remaining is not None and remaining <= 0:
                    yield self._event(
                        "timeout", monitor, f"Stopped waiting for DataMasque run {self.run_id}: time is up."
                    )
                    return
                delay = (
                    self.poll_interval
                    if entries is not None
                    else min(self.poll_interval, 2.0 ** min(failures, 6))
                )
                await asyncio.sleep(delay if remaining is None else min(delay, remaining))
        finally:
            await transport.release_client(client)

    def _first_delay(self) -> float:
        delay = random.uniform(0, self.poll_interval)
        if self.end_time is not None:
            delay = min(delay, max(0.0, self.end_time - time.time()))
        return delay


@functools.cache
def _transport() -> ModuleType:
    """``hooks.async_client``, imported on first use (aiohttp is heavy; DAG files that import this
    module never need it) and looked up once, not once per trigger start: a thousand triggers
    starting together would each pay for the import statement on the event loop."""
    from airflow_provider_datamasque.hooks import async_client

    return async_client
