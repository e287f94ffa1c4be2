"""Start, watch and cancel DataMasque masking runs from a DAG."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink, XCom, conf

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_datamasque.cursor_store import CursorVariable
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
    from airflow_provider_datamasque.monitor import RunMonitor

#: A run of the same name created this long before the DAG run started still counts as ours.
CLOCK_SKEW = timedelta(minutes=2)


class DataMasqueRunLink(BaseOperatorLink):
    """Opens the task's masking run in the DataMasque UI."""

    name = "DataMasque Run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return XCom.get_value(key="run_url", ti_key=ti_key) or ""


class RunWaitMixin:
    """Turning a finished run (or a trigger event) into the task's outcome; shared with the sensor."""

    datamasque_conn_id: str
    stream_logs: bool
    fail_on_warnings: bool
    log: Any
    #: Prefix of the Airflow Variable that carries the log cursor to a later try (``cursor_store``).
    cursor_prefix: str = "datamasque_run_cursor"
    #: Save the log cursor for a later try at most this often while waiting in the worker.
    cursor_save_interval: float = 10.0
    _cursor_var: CursorVariable | None = None
    _run_monitor: RunMonitor | None = None
    #: When the cursor was last saved, and its line count then (``_checkpoint``).
    _saved_at: float = 0.0
    _saved_count: int | None = None

    @cached_property
    def hook(self) -> DataMasqueHook:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)

    def _monitor(self, run_id: int, state: Mapping[str, Any] | None = None) -> RunMonitor:
        from airflow_provider_datamasque.monitor import RunMonitor

        monitor = RunMonitor(self.hook, int(run_id), self.log, stream_logs=self.stream_logs)
        monitor.restore(state)
        return monitor

    # -- the log cursor across tries ---------------------------------------------------------------

    @contextmanager
    def _keeping_cursor(self, context: Context) -> Iterator[None]:
        """Around one entry into the task (execute, a resume): when the task ends for good the
        cursor Variable goes; when Airflow will retry it, it keeps where this try's log stopped.

        A deferral or a reschedule is not an end: the Variable stays as it is. A try that ends
        before it watched anything leaves an earlier try's cursor in place.
        """
        from airflow_provider_datamasque.cursor_store import is_pause, will_retry

        self._bind_cursor(context)
        try:
            yield
        except BaseException as exc:
            if is_pause(exc):
                raise
            monitor = self._run_monitor
            if not will_retry(context, exc, getattr(self, "retries", 0)):
                self._clear_cursor()
            elif monitor is not None:
                self._save_cursor(monitor)
            raise
        self._clear_cursor()

    def _bind_cursor(self, context: Context) -> None:
        """Point at this task instance's cursor Variable (what ``_keeping_cursor`` does on entry)."""
        from airflow_provider_datamasque.cursor_store import CursorVariable

        self._cursor_var = CursorVariable.for_task(self.cursor_prefix, context, self.log)

    def _earlier_state(self, run_id: int, *, expected: bool) -> dict[str, Any] | None:
        """The log cursor an earlier try (or poke) saved for ``run_id``; says where streaming resumes.

        ``expected``: an earlier try watched this run, so a missing cursor means lines repeat.
        """
        if not self.stream_logs or self._cursor_var is None:
            return None
        state = self._cursor_var.load(run_id)
        if state is None:
            if expected:
                self.log.info(
                    "No log cursor from an earlier try of this task for DataMasque run %s: streaming its "
                    "whole log (lines an earlier try logged appear again).",
                    run_id,
                )
            return None
        line = state.get("cursor", {}).get("count", 0)
        if state.get("try") == self._cursor_var.try_number:  # a reschedule of this same try
            self.log.debug("Carrying on with the log of DataMasque run %s from line %s.", run_id, line)
        else:
            self.log.info(
                "Streaming the log of DataMasque run %s from line %s, where the earlier try stopped.",
                run_id,
                line,
            )
        return state

    def _watching(self, run_id: int, state: Mapping[str, Any] | None) -> RunMonitor:
        """The monitor this try waits with (kept for a drain, ``on_kill`` and the retry's cursor);
        the cursor it starts from counts as saved."""
        monitor = self._run_monitor = self._monitor(run_id, state)
        self._saved_at, self._saved_count = time.monotonic(), monitor.cursor.count
        return monitor

    def _checkpoint(self, monitor: RunMonitor, *, every_poll: bool = False) -> None:
        """Save the cursor for a later try if it moved: at most every ``cursor_save_interval``
        seconds (so a killed try leaves a recent one), or after every poll with ``every_poll`` (a
        rescheduled sensor's next poke is a new process)."""
        if monitor.cursor.count == self._saved_count:
            return
        if not every_poll and time.monotonic() - self._saved_at < self.cursor_save_interval:
            return
        self._save_cursor(monitor)
        self._saved_at, self._saved_count = time.monotonic(), monitor.cursor.count

    def _save_cursor(self, monitor: RunMonitor) -> None:
        if self._cursor_var is not None and self.stream_logs:
            self._cursor_var.save(monitor.run_id, monitor.state())

    def _clear_cursor(self) -> None:
        if self._cursor_var is not None and self.stream_logs:
            self._cursor_var.clear()

    def _stale_event(self, context: Context, event: Any) -> bool:
        """Whether this resume carries the trigger event of an earlier try, not this one's.

        Airflow 3.0 does not clear a task instance's ``next_method`` and ``next_kwargs`` when a try
        that resumed from a deferral fails and is retried (apache/airflow#56704, also seen on 3.1
        until its fix #56731): the retry skips ``execute`` and resumes with the earlier try's event, so it
        would fail the same way again instead of reattaching to the run. The trigger echoes the try
        that deferred (``task_try``); a later try starts again from ``execute``. An event without
        it (a trigger deferred by an older version of this provider) is taken as this try's.
        """
        from airflow_provider_datamasque.cursor_store import try_number

        event_try = event.get("task_try") if isinstance(event, Mapping) else None
        if isinstance(event_try, bool) or not isinstance(event_try, int):
            return False
        current = try_number(context["ti"])
        if current <= event_try:
            return False
        self.log.info(
            "This is try %s, resumed with the trigger event of try %s (Airflow 3.0 does not clear a "
            "deferred task's resume for its retry): starting this try from the beginning.",
            current,
            event_try,
        )
        return True

    def _finish(
        self, monitor: RunMonitor, failure_message: str | None = None, *, log_summary: bool = True
    ) -> None:
        """Log the summary, then succeed, warn, or raise according to the run's final status."""
        from airflow_provider_datamasque.hooks.errors import DataMasqueRunError
        from airflow_provider_datamasque.hooks.runs import RunStatus

        status = RunStatus.parse(monitor.status)
        if log_summary:
            self.log.info("%s", monitor.summary())
        if status == RunStatus.FINISHED:
            return
        if status == RunStatus.FINISHED_WITH_WARNINGS:
            if self.fail_on_warnings:
                raise DataMasqueRunError(
                    f"DataMasque run {monitor.run_id} finished with warnings and fail_on_warnings=True.\n"
                    + (failure_message or monitor.failure_message()),
                    run_id=monitor.run_id,
                    status=monitor.status,
                )
            self.log.warning(
                "DataMasque run %s finished with warnings (see the log lines above).", monitor.run_id
            )
            return
        raise DataMasqueRunError(
            failure_message or monitor.failure_message(), run_id=monitor.run_id, status=monitor.status
        )

    def _complete_from_event(self, event: Any) -> RunMonitor:
        """Resume from a trigger event, trusting nothing it does not prove (fails closed)."""
        from airflow_provider_datamasque.hooks.errors import DataMasqueError
        from airflow_provider_datamasque.monitor import validate_event

        event = validate_event(event)
        monitor = self._run_monitor = self._monitor(event["run_id"], event.get("monitor"))
        if event["status"] == "error":
            raise DataMasqueError(str(event.get("message") or "DataMasque trigger failed"))
        if event["status"] != "timeout":
            # Confirm with the server and log whatever the trigger had not yet logged.
            self._poll_once(monitor, "confirming")
        return monitor

    def _poll_once(self, monitor: RunMonitor, doing: str) -> None:
        """One complete poll, riding out a short DataMasque outage (five tries with backoff)."""
        for attempt in range(5):
            try:
                monitor.poll()
                return
            except Exception as exc:
                if not _transient(exc) or attempt == 4:
                    raise
                self.log.warning("DataMasque unreachable %s run %s: %s", doing, monitor.run_id, exc)
                time.sleep(min(2.0**attempt, 10.0))

    def _cancel(self, run_id: int | None, reason: str) -> bool:
        """Best-effort cancel of a run the task is giving up on; says what happened."""
        if run_id is None:
            return False
        try:
            self.hook.cancel_run(run_id)
        except Exception as exc:
            from airflow_provider_datamasque.hooks.errors import DataMasqueApiError

            if isinstance(exc, DataMasqueApiError) and exc.status == 400:
                self.log.info("DataMasque run %s was already over; nothing to cancel (%s).", run_id, reason)
                return False
            self.log.warning("Could not cancel DataMasque run %s (%s): %s", run_id, reason, exc)
            return False
        self.log.warning("Cancelled DataMasque run %s because %s.", run_id, reason)
        return True


def _default_deferrable() -> bool:
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class DataMasqueRunOperator(RunWaitMixin, BaseOperator):
    """Start a DataMasque masking run and, by default, wait for it, streaming its log.

    Exactly one run per task instance: a retry or rerun finds the run an earlier try started (by
    its name) and reattaches to it, or reports it if it already finished successfully, logging the
    lines the earlier try had not: its log cursor is kept in an Airflow Variable (``cursor_store``),
    and a deferred retry's trigger starts from it. A trigger cannot write Variables, so lines a
    trigger streamed for a try whose event never reached the worker are streamed again.
    A run cancelled on timeout or kill still gets its last log lines and summary logged.

    :param source_connection: DataMasque connection (name or UUID) to mask. Templated.
    :param ruleset: Ruleset (name or UUID). Templated.
    :param destination_connection: Destination connection for file masking. Templated.
    :param run_name: DataMasque run name; default ``<dag_id>.<task_id>.<run_id>``. Templated.
    :param options: Run options (``dry_run``, ``batch_size``, ``max_rows``, ``continue_on_failure``,
        ``run_secret``, ``disable_instance_secret``, ``diagnostic_logging``, ``auto_pull``,
        ``auto_pull_branch``), checked before any request. Templated.
    :param wait_for_completion: Wait for the run to end (default) or return once it started.
    :param poll_interval: Seconds between status checks.
    :param timeout: Seconds to wait before cancelling the run and failing (None: no limit).
    :param deferrable: Wait in the triggerer; default ``[operators] default_deferrable``.
    :param stream_logs: Copy the run's log lines into the task log as they appear.
    :param fail_on_warnings: Fail when the run ends ``finished_with_warnings``.
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.
    """

    template_fields: Sequence[str] = (
        "source_connection",
        "ruleset",
        "destination_connection",
        "run_name",
        "options",
    )
    template_fields_renderers = {"options": "json"}
    operator_extra_links = (DataMasqueRunLink(),)
    ui_color = "#2d6cdf"
    ui_fgcolor = "#ffffff"
    #: After cancelling its run (timeout, on_kill), wait up to this many seconds for the run to end
    #: so its last log lines and the summary still reach the task log.
    cancel_drain_seconds: float = 30.0

    def __init__(
        self,
        *,
        source_connection: str,
        ruleset: str,
        destination_connection: str | None = None,
        run_name: str | None = None,
        options: dict[str, Any] | None = None,
        wait_for_completion: bool = True,
        poll_interval: float = 30,
        timeout: float | timedelta | None = None,
        deferrable: bool | None = None,
        stream_logs: bool = True,
        fail_on_warnings: bool = False,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_connection = source_connection
        self.ruleset = ruleset
        self.destination_connection = destination_connection
        self.run_name = run_name
        self.options = options
        self.wait_for_completion = wait_for_completion
        if poll_interval is None or float(poll_interval) <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self.timeout = _seconds(timeout)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.stream_logs = stream_logs
        self.fail_on_warnings = fail_on_warnings
        self.datamasque_conn_id = datamasque_conn_id
        self.run_id: int | None = None
        self._started_at: float | None = None
        self._final_logged = False

    # -- execute ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> int:
        from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError
        from airflow_provider_datamasque.hooks.runs import validate_run_options

        self._started_at = time.time()
        self._run_monitor, self._final_logged, self._cancelled = None, False, False
        options = validate_run_options(self.options)
        self._mask_options(options)
        for field in ("source_connection", "ruleset"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field).strip():
                raise DataMasqueConfigError(
                    f"{field} must be a DataMasque {field.split('_')[-1]} name or UUID."
                )
        hook = self.hook
        connection_id = hook.resolve_connection_id(self.source_connection)
        ruleset_id = hook.resolve_ruleset_id(self.ruleset)
        destination_id = (
            hook.resolve_connection_id(self.destination_connection) if self.destination_connection else None
        )
        run_name = self.run_name or self._default_run_name(context)

        with self._keeping_cursor(context):
            return self._run(context, run_name, connection_id, ruleset_id, destination_id, options)

    def _run(
        self,
        context: Context,
        run_name: str,
        connection_id: str,
        ruleset_id: str,
        destination_id: str | None,
        options: dict[str, Any],
    ) -> int:
        """Find or start the run, then wait for it as configured."""
        from airflow_provider_datamasque.hooks.runs import RunStatus

        run = self._find_earlier_run(context, run_name, connection_id)
        if run is None:
            run = self._start(run_name, connection_id, ruleset_id, destination_id, options)
        self.run_id = int(run["id"])
        self._publish(context, self.run_id)

        reattached = bool(run.get("_reattached"))
        if reattached and RunStatus.is_terminal(run.get("status")):
            self.log.info(
                "DataMasque run %s already finished %s: not masking again.", self.run_id, run["status"]
            )
            self._report_finished(self.run_id)
            return self.run_id
        if not self.wait_for_completion:
            return self.run_id
        if self.deferrable:
            self._defer(context, self.run_id, resume=reattached)
        self._wait(self.run_id, resume=reattached)
        return self.run_id

    def _report_finished(self, run_id: int) -> None:
        """A retry found its run already over: log what the earlier try did not, then judge it."""
        monitor = self._watching(run_id, self._earlier_state(run_id, expected=True))
        self._poll_once(monitor, "reading")
        self._finish(monitor)

    def _mask_options(self, options: Mapping[str, Any]) -> None:
        from airflow.providers.common.compat.sdk import mask_secret

        from airflow_provider_datamasque.hooks.redact import sensitive_values

        for value in sensitive_values(options):
            mask_secret(value)

    def _default_run_name(self, context: Context) -> str:
        ti = context["ti"]
        parts = [ti.dag_id, ti.task_id, context["run_id"]]
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and map_index >= 0:
            parts.append(str(map_index))
        return ".".join(str(p) for p in parts)[:250]

    def _find_earlier_run(self, context: Context, run_name: str, connection_id: str) -> dict[str, Any] | None:
        """A run an earlier try of this task instance started, if any, to reattach to."""
        from airflow_provider_datamasque.hooks.runs import ACTIVE_STATUSES, RunStatus

        dag_run = context.get("dag_run")
        since = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
        for run in self.hook.find_runs(run_name, source_connection=connection_id):
            created = _parse_time(run.get("created_time") or run.get("start_time"))
            if since is not None and created is not None and created < _aware(since) - CLOCK_SKEW:
                continue  # An older DAG run's run with the same name.
            status = RunStatus.parse(run.get("status"))
            if status in ACTIVE_STATUSES or status in (RunStatus.FINISHED, RunStatus.FINISHED_WITH_WARNINGS):
                what = "is still active" if status in ACTIVE_STATUSES else f"already ended {status.value}"
                self.log.info(
                    "Reattaching to DataMasque run %s (%r), started by an earlier try: it %s.",
                    run["id"],
                    run_name,
                    what,
                )
                return {**run, "_reattached": True}
            self.log.info(
                "Earlier DataMasque run %s of this task ended %s; starting a new run.", run["id"], status
            )
            return None
        return None

    def _start(
        self,
        run_name: str,
        connection_id: str,
        ruleset_id: str,
        destination_id: str | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        from airflow_provider_datamasque.hooks.errors import DataMasqueConflictError

        try:
            run = self.hook.start_run(
                connection=connection_id,
                ruleset=ruleset_id,
                name=run_name,
                options=options,
                destination_connection=destination_id,
                resolve_names=False,
            )
        except DataMasqueConflictError as exc:
            raise DataMasqueConflictError(
                f"{exc}\n{self._describe_active_runs(connection_id)} Wait for it to end, or cancel it "
                "(DataMasqueCancelRunOperator), then retry.",
                status=exc.status,
                method=exc.method,
                path=exc.path,
                detail=exc.detail,
            ) from None
        self.log.info("Started DataMasque run %s (%r).", run.get("id"), run_name)
        return run

    def _describe_active_runs(self, connection_id: str) -> str:
        from airflow_provider_datamasque.hooks.runs import ACTIVE_STATUSES

        try:
            active = [
                run
                for status in ACTIVE_STATUSES
                for run in self.hook.list_runs(run_status=status.value, max_pages=1)
                if str(run.get("source_connection") or run.get("connection")) == connection_id
            ]
        except Exception:
            return "Another run is already active on this DataMasque connection."
        if not active:
            return "Another run is already active on this DataMasque connection."
        run = active[0]
        return (
            f"Run {run.get('id')} ({run.get('name')!r}, {run.get('status')}) is already active on connection "
            f"{self.source_connection!r}."
        )

    def _publish(self, context: Context, run_id: int) -> None:
        """Record the run before waiting, so the UI link and on_kill work from now on."""
        ti = context["ti"]
        ti.xcom_push(key="run_id", value=run_id)
        ti.xcom_push(key="run_url", value=self.hook.run_url(run_id))

    # -- waiting ----------------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        """Epoch seconds when waiting must stop: ``timeout`` or, a little earlier, ``execution_timeout``."""
        start = self._started_at or time.time()
        limits = []
        if self.timeout is not None:
            limits.append(start + self.timeout)
        if self.execution_timeout is not None:
            budget = self.execution_timeout.total_seconds()
            # End a little before Airflow does, so the run can still be cancelled.
            limits.append(start + budget - min(60.0, max(1.0, budget * 0.1)))
        return min(limits) if limits else None

    def _defer(self, context: Context, run_id: int, *, resume: bool = False) -> None:
        """Wait in the triggerer; a retry's trigger starts from the earlier try's log cursor.

        The trigger cannot write Variables: the cursor is saved by the worker when the trigger's
        event comes back (``execute_complete``). If the deferred try ends without that (the task is
        killed or times out while deferred, or the triggerer restarts the trigger), the lines the
        trigger streamed since the last saved cursor are streamed again by the next try.
        """
        from airflow_provider_datamasque.cursor_store import try_number
        from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

        deadline = self._deadline()
        state = self._earlier_state(run_id, expected=True) if resume else None
        self.defer(
            trigger=DataMasqueRunTrigger(
                run_id=run_id,
                datamasque_conn_id=self.datamasque_conn_id,
                poll_interval=self.poll_interval,
                end_time=deadline,
                stream_logs=self.stream_logs,
                monitor_state=state,
                task_try=try_number(context["ti"]),
            ),
            method_name="execute_complete",
        )

    def _wait(self, run_id: int, *, resume: bool = False) -> None:
        from airflow_provider_datamasque.hooks.errors import DataMasqueError
        from airflow_provider_datamasque.hooks.runs import RunStatus

        monitor = self._watching(run_id, self._earlier_state(run_id, expected=True) if resume else None)
        self._monitor_lock = threading.RLock()
        deadline = self._deadline()
        failures = 0
        try:
            while True:
                try:
                    with self._monitor_lock:
                        monitor.poll()
                    failures = 0
                except DataMasqueError as exc:
                    if not _transient(exc):
                        raise
                    failures += 1
                    self.log.warning("DataMasque unreachable while waiting for run %s: %s", run_id, exc)
                if failures == 0 and RunStatus.is_terminal(monitor.status):
                    break
                self._checkpoint(monitor)
                now = time.time()
                if deadline is not None and now >= deadline:
                    self._timed_out(run_id)
                pause = (
                    self.poll_interval if failures == 0 else min(self.poll_interval, 2.0 ** min(failures, 6))
                )
                time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - now)))
        except BaseException as exc:
            if not isinstance(exc, DataMasqueError) and not getattr(self, "_cancelled", False):
                # execution_timeout, SIGTERM, KeyboardInterrupt: do not leave the run behind.
                self._cancelled = self._cancel(run_id, f"the task stopped waiting ({type(exc).__name__})")
                if self._cancelled:
                    self._drain_after_cancel()
            raise  # _keeping_cursor saves the cursor for a retry
        self._finish(monitor, log_summary=not self._final_logged)

    def _drain_after_cancel(self) -> None:
        """After cancelling, stream the run's last lines (up to cancelled) once, plus the summary.

        Bounded by ``cancel_drain_seconds``; best effort: a failure here is logged and never
        replaces the error the task is already failing with.
        """
        from airflow_provider_datamasque.hooks.runs import RunStatus

        monitor = self._run_monitor
        lock = getattr(self, "_monitor_lock", None)
        if monitor is None or lock is None or self._final_logged:
            return
        try:
            with lock:
                if self._final_logged:
                    return
                give_up = time.monotonic() + self.cancel_drain_seconds
                while True:
                    monitor.poll()
                    if RunStatus.is_terminal(monitor.status) or time.monotonic() >= give_up:
                        break
                    time.sleep(min(self.poll_interval, 1.0, max(0.0, give_up - time.monotonic())))
                self._final_logged = True
                self.log.info("%s", monitor.summary())
                if not RunStatus.is_terminal(monitor.status):
                    self.log.warning(
                        "DataMasque run %s is still %s after %.0fs; later log lines are not in this task log.",
                        monitor.run_id,
                        monitor.status,
                        self.cancel_drain_seconds,
                    )
        except BaseException as exc:  # best effort: the original failure goes on
            self.log.warning(
                "Could not stream the last log lines of cancelled DataMasque run %s: %s",
                monitor.run_id,
                f"{type(exc).__name__}: {exc}",
            )

    def _timed_out(self, run_id: int) -> None:
        from airflow_provider_datamasque.hooks.errors import DataMasqueRunError

        self._cancelled = self._cancel(run_id, "the wait timed out")
        if self._cancelled:
            self._drain_after_cancel()
        limit = "timeout" if self.timeout is not None else "execution_timeout"
        raise DataMasqueRunError(
            f"Gave up waiting for DataMasque run {run_id} ({limit} reached); "
            + (
                "the run was cancelled."
                if self._cancelled
                else "it could not be cancelled, check DataMasque."
            ),
            run_id=run_id,
            status="timeout",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: validate the event, then finish like the waiting mode
        (the cursor the trigger reached is kept for a retry, or cleared once the task is done).

        A retry resumed with an earlier try's event (Airflow 3.0, ``_stale_event``) runs ``execute``
        instead: it reattaches to the run and waits for it again from the saved cursor.
        """
        if self._stale_event(context, event):
            return self.execute(context)
        self._run_monitor, self._final_logged, self._cancelled = None, False, False
        with self._keeping_cursor(context):
            monitor = self._complete_from_event(event)
            self.run_id = monitor.run_id
            if event and event.get("status") == "timeout":
                self._monitor_lock = threading.RLock()
                self._timed_out(monitor.run_id)
            self._finish(monitor, failure_message=None)
            return monitor.run_id

    def on_kill(self) -> None:
        if self.run_id is not None and not getattr(self, "_cancelled", False):
            self._cancelled = self._cancel(self.run_id, "the Airflow task was killed")
            if self._cancelled:
                self._drain_after_cancel()


class DataMasqueCancelRunOperator(RunWaitMixin, BaseOperator):
    """Cancel a DataMasque run and, by default, wait until it is cancelled.

    :param run_id: Run id, e.g. ``"{{ ti.xcom_pull('mask') }}"`` or an XComArg. Templated.
    :param wait_for_cancellation: Wait until the run reaches a terminal status.
    :param poll_interval: Seconds between status checks while waiting.
    :param timeout: Seconds to wait for the cancellation before failing (None: no limit).
    :param datamasque_conn_id: Airflow connection of type ``datamasque``.
    """

    template_fields: Sequence[str] = ("run_id",)
    stream_logs = False
    fail_on_warnings = False

    def __init__(
        self,
        *,
        run_id: int | str,
        wait_for_cancellation: bool = True,
        poll_interval: float = 5,
        timeout: float | timedelta | None = 600,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.wait_for_cancellation = wait_for_cancellation
        self.poll_interval = float(poll_interval)
        self.timeout = _seconds(timeout)
        self.datamasque_conn_id = datamasque_conn_id

    def execute(self, context: Context) -> str:
        from airflow_provider_datamasque.hooks.errors import (
            DataMasqueApiError,
            DataMasqueConfigError,
            DataMasqueNotFoundError,
            DataMasqueRunError,
        )
        from airflow_provider_datamasque.hooks.runs import RunStatus

        try:
            run_id = int(str(self.run_id).strip())
        except ValueError:
            raise DataMasqueConfigError(
                f"run_id must be a DataMasque run id (an integer), got {self.run_id!r}."
            ) from None
        try:
            run = self.hook.get_run(run_id)
        except DataMasqueNotFoundError:
            raise DataMasqueNotFoundError(
                f"DataMasque run {run_id} does not exist: check the run_id passed to the cancel task.",
                status=404,
            ) from None
        if RunStatus.is_terminal(run.get("status")):
            self.log.info("DataMasque run %s already ended %s; nothing to cancel.", run_id, run.get("status"))
            return str(run.get("status"))
        try:
            self.hook.cancel_run(run_id)
        except DataMasqueApiError as exc:
            if exc.status != 400:  # 400: it ended between our read and the cancel.
                raise
        self.log.info("Asked DataMasque to cancel run %s.", run_id)
        if not self.wait_for_cancellation:
            return RunStatus.CANCELLING.value
        deadline = None if self.timeout is None else time.time() + self.timeout
        while True:
            status = self.hook.get_run_status(run_id)
            if RunStatus.is_terminal(status):
                self.log.info("DataMasque run %s is now %s.", run_id, status)
                return status
            if deadline is not None and time.time() >= deadline:
                raise DataMasqueRunError(
                    f"DataMasque run {run_id} is still {status} after {self.timeout:.0f}s of waiting for the cancel.",
                    run_id=run_id,
                    status=status,
                )
            time.sleep(self.poll_interval)


def _transient(exc: BaseException) -> bool:
    from airflow_provider_datamasque.hooks.client import is_transient

    return is_transient(exc)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return _aware(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
