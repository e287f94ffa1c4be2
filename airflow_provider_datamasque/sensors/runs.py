"""``DataMasqueRunSensor``: wait for a masking run started elsewhere, streaming its log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator

from airflow_provider_datamasque.operators.runs import RunWaitMixin, _default_deferrable, _transient

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_datamasque.monitor import RunMonitor


class DataMasqueRunSensor(RunWaitMixin, BaseSensorOperator):
    """Succeed when a DataMasque run finishes; fail (or skip with ``soft_fail``) when it fails.

    Log lines reach the task log exactly once in every mode, across reschedules and retries: the
    log cursor is kept in an Airflow Variable named
    ``datamasque_sensor_cursor.<dag>.<task>.<run>.<map index>`` (no try number, so a retry of the
    sensor carries on where the earlier try stopped). Reschedule mode saves it after every poke
    (each poke is a new process), poke mode every ``cursor_save_interval`` seconds and when a try
    fails, deferrable mode when the trigger's event comes back. It is removed when the sensor ends
    for good: success, skip, or a failure Airflow will not retry.

    :param run_id: DataMasque run id, e.g. ``"{{ ti.xcom_pull('start_masking') }}"``. Templated.
    :param stream_logs: Copy the run's log lines into the task log.
    :param fail_on_warnings: Fail when the run ends ``finished_with_warnings``.
    :param deferrable: Wait in the triggerer; default ``[operators] default_deferrable``.
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.

    Plus the usual sensor arguments: ``poke_interval``, ``timeout``, ``mode``, ``soft_fail``.
    """

    template_fields: Sequence[str] = ("run_id",)
    cursor_prefix = "datamasque_sensor_cursor"

    def __init__(
        self,
        *,
        run_id: int | str,
        stream_logs: bool = True,
        fail_on_warnings: bool = False,
        deferrable: bool | None = None,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.stream_logs = stream_logs
        self.fail_on_warnings = fail_on_warnings
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.datamasque_conn_id = datamasque_conn_id

    def _run_id(self) -> int:
        from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError

        try:
            return int(str(self.run_id).strip())
        except ValueError:
            raise DataMasqueConfigError(
                f"run_id must be a DataMasque run id (an integer), got {self.run_id!r}."
            ) from None

    def execute(self, context: Context) -> Any:
        run_id = self._run_id()
        self._run_monitor = None
        with self._keeping_cursor(context):
            if not self.deferrable:
                return super().execute(context)
            self._defer(run_id, context)
        return None

    def _defer(self, run_id: int, context: Context) -> None:
        """Wait in the triggerer, from the log cursor an earlier try of this sensor saved.

        As for the operator: lines a trigger streamed for a try that then ended without its event
        reaching the worker (killed while deferred, a triggerer restart) are streamed again.
        """
        from airflow_provider_datamasque.cursor_store import try_number
        from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout
        self.defer(
            trigger=DataMasqueRunTrigger(
                run_id=run_id,
                datamasque_conn_id=self.datamasque_conn_id,
                poll_interval=float(
                    self.poke_interval
                    if not isinstance(self.poke_interval, timedelta)
                    else self.poke_interval.total_seconds()
                ),
                end_time=time.time() + float(timeout) if timeout else None,
                stream_logs=self.stream_logs,
                monitor_state=self._earlier_state(run_id, expected=try_number(context["ti"]) > 1),
                task_try=try_number(context["ti"]),
            ),
            method_name="execute_complete",
        )

    # -- poke / reschedule ----------------------------------------------------------------------

    def poke(self, context: Context) -> bool:
        from airflow_provider_datamasque.hooks.errors import DataMasqueError
        from airflow_provider_datamasque.hooks.runs import RunStatus

        run_id = self._run_id()
        if self._cursor_var is None:  # poke called on its own, not through execute
            self._bind_cursor(context)
        monitor = self._run_monitor
        if monitor is None:
            from airflow_provider_datamasque.cursor_store import try_number

            # First poke of this process: carry on from an earlier poke's or try's cursor.
            monitor = self._watching(
                run_id, self._earlier_state(run_id, expected=try_number(context["ti"]) > 1)
            )
        try:
            monitor.poll()
        except DataMasqueError as exc:
            if not _transient(exc):
                raise
            # An outage is "not yet": poke again (the cursor only moves on a complete read).
            self.log.warning("DataMasque unreachable while watching run %s: %s", run_id, exc)
            return False
        if not RunStatus.is_terminal(monitor.status):
            self._checkpoint(monitor, every_poll=self.mode == "reschedule")
            self.log.info("DataMasque run %s is %s.", run_id, monitor.status)
            return False
        self._finish_sensor(monitor)
        return True

    def _finish_sensor(self, monitor: RunMonitor, failure_message: str | None = None) -> None:
        from airflow.providers.common.compat.sdk import AirflowSkipException

        from airflow_provider_datamasque.hooks.errors import DataMasqueRunError

        try:
            self._finish(monitor, failure_message)
        except DataMasqueRunError as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: {exc}") from None
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Finish from the trigger's event; a retry resumed with an earlier try's event (Airflow
        3.0, ``_stale_event``) defers again from the saved cursor instead."""
        from airflow.providers.common.compat.sdk import AirflowSkipException

        if self._stale_event(context, event):
            return self.execute(context)
        self._run_monitor = None
        with self._keeping_cursor(context):
            monitor = self._complete_from_event(event)
            if event and event.get("status") == "timeout":
                message = f"Sensor timed out waiting for DataMasque run {monitor.run_id}."
                if self.soft_fail:
                    raise AirflowSkipException(message)
                try:  # older common-compat releases have no sdk.AirflowSensorTimeout
                    from airflow.providers.common.compat.sdk import AirflowSensorTimeout
                except ImportError:
                    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]

                raise AirflowSensorTimeout(message)
            self._finish_sensor(monitor)
        return None
