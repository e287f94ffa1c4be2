"""``DataMasqueRunTrigger``: waits for a masking run in the triggerer, streaming its log lines.

HTTP calls run in a worker thread (``asyncio.to_thread``) through the same hook the worker uses,
so retries, re-login and error mapping are shared, the event loop never blocks on a socket, and
the connection is read off the loop (as Airflow 3's triggerer requires). ``benchmarks/`` measures
this against a native-async client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
    from airflow_provider_datamasque.monitor import RunMonitor


class DataMasqueRunTrigger(BaseTrigger):
    """Fires one event when run ``run_id`` ends, or at ``end_time`` (epoch seconds).

    :param run_id: DataMasque run id.
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.
    :param poll_interval: Seconds between status checks.
    :param end_time: Epoch seconds after which a ``timeout`` event is sent (None: wait for ever).
    :param stream_logs: Log the run's log lines as they appear.
    :param monitor_state: Log cursor and counts to carry on from (lines already logged stay logged).
    """

    def __init__(
        self,
        run_id: int,
        datamasque_conn_id: str = "datamasque_default",
        poll_interval: float = 30.0,
        end_time: float | None = None,
        stream_logs: bool = True,
        monitor_state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.run_id = int(run_id)
        self.datamasque_conn_id = datamasque_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.stream_logs = stream_logs
        self.monitor_state = monitor_state or {}

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
            },
        )

    def _event(self, status: str, monitor: RunMonitor | None, message: str, **extra: Any) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "run_id": self.run_id,
            "run_status": monitor.status if monitor else None,
            "message": message,
            "monitor": monitor.state() if monitor else self.monitor_state,
        }
        payload.update(extra)
        return TriggerEvent(payload)

    def _make_monitor(self) -> RunMonitor:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
        from airflow_provider_datamasque.monitor import RunMonitor

        hook: DataMasqueHook = DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)
        hook.client  # noqa: B018 - reads the Airflow connection here, off the event loop
        monitor = RunMonitor(hook, self.run_id, self.log, stream_logs=self.stream_logs)
        monitor.restore(self.monitor_state)
        return monitor

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_datamasque.hooks.client import is_transient
        from airflow_provider_datamasque.hooks.errors import (
            DataMasqueApiError,
            DataMasqueError,
            DataMasqueNotFoundError,
            DataMasqueTransportError,
        )
        from airflow_provider_datamasque.hooks.runs import RunStatus

        try:
            monitor = await asyncio.to_thread(self._make_monitor)
        except DataMasqueError as exc:
            yield self._event("error", None, f"Cannot watch DataMasque run {self.run_id}: {exc}")
            return
        failures = 0
        try:
            while True:
                try:
                    entries = await asyncio.to_thread(monitor.fetch)
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
                    # Ride out outages: the hook already retried; keep waiting with backoff.
                    failures += 1
                    wait = min(self.poll_interval, 2.0 ** min(failures, 6))
                    self.log.warning(
                        "DataMasque unreachable while watching run %s (%s); again in %.0fs",
                        self.run_id,
                        exc,
                        wait,
                    )
                    entries = None
                monitor.emit(entries or [])
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
            monitor.hook.close()  # type: ignore[attr-defined]
