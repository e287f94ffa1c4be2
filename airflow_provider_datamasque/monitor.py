"""Watching one masking run: status, new log lines exactly once, and the closing summary.

The run operator (waiting in the worker), the sensor (poke and reschedule) and the trigger (in
the triggerer) all use ``RunMonitor``, so a log line looks the same and is counted the same way
whichever mode waits.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_datamasque.hooks.runs import (
    LOG_LEVEL_NAMES,
    LogCursor,
    RunStatus,
    format_log_entry,
    run_summary,
)

if TYPE_CHECKING:
    from airflow_provider_datamasque.hooks.async_client import AsyncDataMasqueClient
    from airflow_provider_datamasque.hooks.runs import RunsMixin

#: Events a trigger may send; anything else fails the task (fail closed).
EVENT_STATUSES = frozenset({"success", "failed", "cancelled", "timeout", "error"})


@dataclass
class RunMonitor:
    """Polls one run; each call to :meth:`poll` logs only log entries not logged before."""

    hook: RunsMixin | None  # None when only fetch_async is used (the trigger)
    run_id: int
    log: Any  # a logging.Logger, or the structlog logger Airflow 3 gives tasks and triggers
    stream_logs: bool = True
    cursor: LogCursor = field(default_factory=LogCursor)
    level_counts: Counter[str] = field(default_factory=Counter)
    tail: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=20))
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.run.get("status", ""))

    def poll(self) -> dict[str, Any]:
        """Read the run and log the lines added since the last poll; return the run."""
        self.emit(*self.fetch())
        return self.run

    def fetch(self) -> tuple[list[Any], LogCursor]:
        """The I/O half of a poll: the run, then the log entries added since the cursor, and the
        cursor after them. The monitor's own cursor moves only when :meth:`emit` logs them.

        Status is read before the log, so once the status is terminal the log read is complete.
        """
        if self.hook is None:
            raise TypeError("RunMonitor without a hook reads through fetch_async")
        self.run = self.hook.get_run(self.run_id)
        if not self.stream_logs:
            return [], self.cursor
        return self.hook.get_run_log_since(self.run_id, self.cursor, final=RunStatus.is_terminal(self.status))

    async def fetch_async(self, reader: AsyncDataMasqueClient) -> tuple[list[Any], LogCursor]:
        """:meth:`fetch` over the async transport (the trigger's), with the same cursor and order."""
        self.run = await reader.get_run(self.run_id)
        if not self.stream_logs:
            return [], self.cursor
        return await reader.get_run_log_since(
            self.run_id, self.cursor, final=RunStatus.is_terminal(self.status)
        )

    def emit(self, entries: list[Any], cursor: LogCursor) -> None:
        """The logging half of a poll (kept apart so a trigger logs on its own event loop): log
        ``entries`` and move the cursor to ``cursor``, the position after them.

        Each line is logged exactly once even when the task is stopped in the middle (a timeout or
        SIGTERM raises wherever the task happens to be): the cursor then records the lines that
        were logged, by count, so the next read (the drain after a cancel, or a retry) carries on
        at the first line not logged.
        """
        start, logged = self.cursor, 0
        try:
            for entry in entries:
                level, text = format_log_entry(entry)
                self.log.log(level, "%s", text)
                logged += 1
                self.level_counts[LOG_LEVEL_NAMES.get(level, logging.getLevelName(level))] += 1
                self.tail.append((level, text))
        finally:
            # Stopped part-way: no byte offset is known for a line inside the batch, so the next
            # read takes the whole log and skips the lines counted here.
            self.cursor = cursor if logged == len(entries) else LogCursor(start.count + logged)

    def state(self) -> dict[str, Any]:
        """What a trigger event or a rescheduled sensor needs to carry on where this left off."""
        return {
            "cursor": self.cursor.to_dict(),
            "level_counts": dict(self.level_counts),
            # The failure message quotes the last lines; whoever resumes has not seen them.
            "tail": [[level, text] for level, text in self.tail],
        }

    def restore(self, state: Mapping[str, Any] | None) -> None:
        if not state:
            return
        self.cursor = LogCursor.from_value(state.get("cursor"))
        counts = state.get("level_counts")
        if isinstance(counts, Mapping):
            self.level_counts = Counter({str(k): int(v) for k, v in counts.items() if isinstance(v, int)})
        tail = state.get("tail")
        if isinstance(tail, list):
            self.tail.clear()
            for item in tail:
                if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], int):
                    self.tail.append((item[0], str(item[1])))

    def summary(self) -> str:
        """One line: status, duration and log lines by level."""
        run = self.run
        duration = _duration(run.get("start_time"), run.get("end_time"))
        counts = ", ".join(f"{n} {lvl}" for lvl, n in sorted(self.level_counts.items())) or "none"
        total = sum(self.level_counts.values())
        took = f" in {duration:.1f}s" if duration is not None else ""
        return (
            f"DataMasque run {self.run_id} ({run.get('name', '')}) {self.status or 'unknown'}{took}; "
            f"{total} log lines ({counts})"
        )

    def failure_message(self) -> str:
        """Why the run failed: its status, error message, and the last log lines, errors first."""
        run = self.run
        lines = [f"DataMasque run {self.run_id} ended {self.status or 'in an unknown state'}."]
        if run.get("error_message"):
            lines.append(f"Error: {run['error_message']}")
        errors = [text for level, text in self.tail if level >= logging.ERROR]
        others = [text for level, text in self.tail if level < logging.ERROR][-10:]
        if errors or others:
            lines.append("Last log lines (errors first):")
            lines.extend(f"  {text}" for text in errors + others)
        lines.append(f"Run details: {run_summary(run)}")
        return "\n".join(lines)


def _duration(start: Any, end: Any) -> float | None:
    try:
        begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        finish = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return max(0.0, (finish - begin).total_seconds())


def validate_event(event: Any) -> dict[str, Any]:
    """Check a trigger event before trusting it: anything unexpected fails the task."""
    from airflow_provider_datamasque.hooks.errors import DataMasqueError

    if not isinstance(event, Mapping):
        raise DataMasqueError(f"DataMasque trigger sent no usable event ({event!r}); failing to be safe.")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise DataMasqueError(
            f"DataMasque trigger sent an unexpected event status {status!r}; failing to be safe."
        )
    run_id = event.get("run_id")
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise DataMasqueError(
            f"DataMasque trigger event has no valid run_id ({run_id!r}); failing to be safe."
        )
    if status == "success" and not RunStatus.is_success(event.get("run_status")):
        raise DataMasqueError(
            f"DataMasque trigger reported success but run status is {event.get('run_status')!r}; failing to be safe."
        )
    return dict(event)
