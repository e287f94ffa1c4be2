"""``DataMasqueRunSensor``: wait for a masking run started elsewhere, streaming its log."""

from __future__ import annotations

import json
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

    Log lines reach the task log exactly once in every mode. In ``reschedule`` mode each poke is a
    new process, so the log cursor is kept between pokes in an Airflow Variable named
    ``datamasque_sensor_cursor.<dag>.<task>.<run>.<map index>.<try>``, removed when the sensor ends.

    :param run_id: DataMasque run id, e.g. ``"{{ ti.xcom_pull('start_masking') }}"``. Templated.
    :param stream_logs: Copy the run's log lines into the task log.
    :param fail_on_warnings: Fail when the run ends ``finished_with_warnings``.
    :param deferrable: Wait in the triggerer; default ``[operators] default_deferrable``.
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.

    Plus the usual sensor arguments: ``poke_interval``, ``timeout``, ``mode``, ``soft_fail``.
    """

    template_fields: Sequence[str] = ("run_id",)

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
        self._run_monitor: RunMonitor | None = None

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
        if not self.deferrable:
            return super().execute(context)
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
            ),
            method_name="execute_complete",
        )
        return None

    # -- poke / reschedule ----------------------------------------------------------------------

    def _cursor_key(self, context: Context) -> str:
        ti = context["ti"]
        return (
            f"datamasque_sensor_cursor.{ti.dag_id}.{ti.task_id}.{context['run_id']}."
            f"{getattr(ti, 'map_index', -1)}.{getattr(ti, 'try_number', 0)}"
        )

    def poke(self, context: Context) -> bool:
        from airflow_provider_datamasque.hooks.errors import DataMasqueError
        from airflow_provider_datamasque.hooks.runs import RunStatus

        run_id = self._run_id()
        rescheduling = self.mode == "reschedule"
        if self._run_monitor is None:
            self._run_monitor = self._monitor(run_id, self._load_state(context) if rescheduling else None)
        monitor = self._run_monitor
        try:
            monitor.poll()
        except DataMasqueError as exc:
            if not _transient(exc):
                raise
            # An outage is "not yet": poke again (the cursor only moves on a complete read).
            self.log.warning("DataMasque unreachable while watching run %s: %s", run_id, exc)
            return False
        if not RunStatus.is_terminal(monitor.status):
            if rescheduling:
                self._save_state(context, monitor.state())
            self.log.info("DataMasque run %s is %s.", run_id, monitor.status)
            return False
        if rescheduling:
            self._clear_state(context)
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

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        from airflow.providers.common.compat.sdk import AirflowSkipException

        monitor = self._complete_from_event(event)
        if event and event.get("status") == "timeout":
            message = f"Sensor timed out waiting for DataMasque run {monitor.run_id}."
            if self.soft_fail:
                raise AirflowSkipException(message)
            from airflow.exceptions import AirflowSensorTimeout

            raise AirflowSensorTimeout(message)
        self._finish_sensor(monitor)

    # -- cursor between reschedules ----------------------------------------------------------------

    def _load_state(self, context: Context) -> dict[str, Any] | None:
        from airflow.providers.common.compat.sdk import Variable

        try:
            raw = Variable.get(self._cursor_key(context), None)
        except Exception:
            return None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _save_state(self, context: Context, state: dict[str, Any]) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(self._cursor_key(context), json.dumps(state))

    def _clear_state(self, context: Context) -> None:
        from airflow.providers.common.compat.sdk import Variable

        try:
            Variable.delete(self._cursor_key(context))
        except Exception as exc:  # Leaving a small Variable behind is not worth failing for.
            self.log.debug("Could not delete sensor cursor variable: %s", exc)
