"""A task stopped while it logs a batch of run-log lines loses none and repeats none.

Airflow stops a task by raising wherever it happens to be (``execution_timeout``, SIGTERM): in
the middle of logging a poll's batch of lines, too. The lines after that point must still reach
the task log, once, through the drain after the cancel or a retry. Against the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.runs import LogCursor, format_log_entry, parse_log_tail
from airflow_provider_datamasque.monitor import RunMonitor

from ._harness import (
    CONN_ENV,
    DataMasqueEmulator,
    conn_json,
    count_logged,
    make_context,
    run_operator,
    seed,
    served_log_lines,
    start_run,
    wait_for,
    wait_run_status,
)
from .test_run_operator import operator, output


class Stopped(BaseException):
    """Stands in for what Airflow raises into a task it stops (a BaseException, like SystemExit)."""


class InterruptingLog:
    """A task logger that is stopped once, as the ``at``-th DataMasque line is being logged."""

    def __init__(self, inner: Any, at: int, exc: BaseException | None = None) -> None:
        self.inner, self.at, self.seen = inner, at, 0
        self.exc = exc or Stopped("stopped while logging")
        self.fired = False

    def log(self, level: int, msg: str, *args: Any) -> None:
        if args and str(args[0]).startswith("[DataMasque "):
            self.seen += 1
            if self.seen == self.at and not self.fired:
                self.fired = True
                raise self.exc
        self.inner.log(level, msg, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Collect:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


@pytest.mark.parametrize("at", [1, 4, 25], ids=["first-line", "mid-batch", "last-line"])
def test_monitor_stopped_mid_batch_carries_on_at_the_first_line_not_logged(
    dm_conn: DataMasqueEmulator, at: int
) -> None:
    run_id = start_run("done [emulator:log_lines=20]")
    wait_run_status(dm_conn, run_id, ("finished",))
    served = served_log_lines(dm_conn, run_id)
    assert len(served) == 25, served  # the batch the parametrisation cuts through
    collected = Collect()
    hook = DataMasqueHook()
    try:
        monitor = RunMonitor(hook, run_id, InterruptingLog(collected, at))
        with pytest.raises(Stopped):
            monitor.poll()
        assert collected.lines == served[: at - 1]
        assert monitor.cursor == LogCursor(at - 1), "the cursor counts only the lines logged"
        monitor.poll()  # the drain after a cancel, or a retry restoring the cursor
        monitor.poll()  # and nothing more after that
    finally:
        hook.close()
    assert collected.lines == served
    assert monitor.cursor.offset > 0, "back on byte offsets after the whole-log read"


def test_monitor_stopped_mid_batch_in_a_ranged_read(dm_conn: DataMasqueEmulator) -> None:
    """The batch cut through came from a Range read (the cursor had a byte offset before)."""
    run_id = start_run("ranged [emulator:log_lines=40]")
    collected = Collect()
    hook = DataMasqueHook()
    try:
        monitor = RunMonitor(hook, run_id, collected)
        wait_for(lambda: monitor.poll() and monitor.cursor.offset > 0, what="a first batch with an offset")
        before = len(collected.lines)
        wait_run_status(dm_conn, run_id, ("finished",))
        monitor.log = InterruptingLog(collected, 3)
        with pytest.raises(Stopped):
            monitor.poll()
        assert monitor.cursor == LogCursor(before + 2)
        monitor.log = collected
        monitor.poll()
    finally:
        hook.close()
    served = served_log_lines(dm_conn, run_id)
    assert collected.lines == served
    assert dm_conn.count_requests("GET", rf"/api/runs/{run_id}/log/") >= 3


@pytest.fixture
def slow_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataMasqueEmulator]:
    """Runs of 6 s, so a poll's batch holds several lines while the run is still going."""
    with DataMasqueEmulator(run_seconds=6, seed=11) as emulator:
        seed(emulator)
        monkeypatch.setenv(CONN_ENV, conn_json(emulator))
        yield emulator


def test_run_operator_stopped_while_logging_streams_every_line_once(
    slow_emu: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """execution_timeout fires while the operator logs a batch (at its second line): the run is
    cancelled, the drain logs the rest of that batch and the lines up to ``cancelled``, each once;
    the task fails with the timeout, not with something the drain raised."""
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    emit = RunMonitor.emit
    cut: list[int] = []

    def emit_cut_in_the_first_big_batch(self: RunMonitor, entries: list[Any], cursor: LogCursor) -> None:
        if not cut and len(entries) >= 3:
            cut.append(len(entries))
            inner = self.log
            self.log = InterruptingLog(inner, 2, AirflowTaskTimeout("Timeout, PID: 1"))
            try:
                emit(self, entries, cursor)
            finally:
                self.log = inner
        else:
            emit(self, entries, cursor)

    monkeypatch.setattr(RunMonitor, "emit", emit_cut_in_the_first_big_batch)
    with pytest.raises(AirflowTaskTimeout):
        run_operator(operator(run_name="[emulator:log_lines=60]", poll_interval=1.0), make_context())
    text = output(capfd)
    assert cut, "no batch of 3 or more lines to cut through"
    assert slow_emu.get_run(1)["status"] == "cancelled", "the cut came while the run was going"
    lines = served_log_lines(slow_emu, 1)
    assert "status cancelled" in lines[-1]
    counts = count_logged(text, lines)
    assert {line: n for line, n in counts.items() if n != 1} == {}


def test_text_log_read_whole_skips_the_lines_a_count_cursor_has_seen() -> None:
    """A plain-text log (some DataMasque versions) read whole after a stop part-way: the lines
    the count says were logged are skipped, and the cursor gets its byte offset back."""
    body = b"starting\nmasking table a\n\nmasking table b\nfinished\n"
    new, cursor = parse_log_tail(body, 0, LogCursor(2), final=True)
    assert new == ["masking table b", "finished"]
    assert cursor == LogCursor(4, len(body))
    # A ranged tail is never skipped by count: its start is already past what was logged.
    tail = b"masking table b\nfinished\n"
    start = len(body) - len(tail)
    new, cursor = parse_log_tail(tail, start, LogCursor(2, start), final=True)
    assert new == ["masking table b", "finished"] and cursor == LogCursor(4, len(body))


def test_trigger_emit_moves_the_cursor_only_with_the_lines() -> None:
    """The trigger fetches then emits; a batch fetched but not emitted leaves the cursor alone."""
    monitor = RunMonitor(None, 1, Collect())
    entries = [{"log_level": 20, "timestamp": "t", "message": f"line {i}"} for i in range(3)]
    monitor.emit(entries, LogCursor(3, 300))
    assert monitor.cursor == LogCursor(3, 300)
    assert monitor.log.lines == [format_log_entry(entry)[1] for entry in entries]
    monitor.emit([], LogCursor(3, 300))
    assert monitor.cursor == LogCursor(3, 300) and len(monitor.log.lines) == 3
