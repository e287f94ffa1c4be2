"""Masking runs: creation, a lazily computed lifecycle, an append-only log, and outcome markers.

Lifecycle. A run's status is a pure function of the time since it was created (no thread per run):
``queued`` for the first 10% of its duration, ``validating`` for the next 10%, ``running`` for the
rest, then its final status. The duration is the emulator's ``run_seconds`` at creation time.
Cancelling an active run makes it ``cancelling`` and then ``cancelled`` after
``min(0.2 * run_seconds, 1 s)``.

Outcome markers. Put any of these in the run ``name`` or in a YAML comment line of the ruleset
(for example ``# [emulator:fail]``):

- ``[emulator:fail]``: the run ends ``failed``, with an ERROR log line and ``error_message``.
- ``[emulator:warnings]``: the run ends ``finished_with_warnings``, with WARNING log lines.
- ``[emulator:long]``: the run takes 100 x ``run_seconds``.
- ``[emulator:log_lines=N]``: the run writes N extra INFO log lines spread over its running phase.
- ``[emulator:report_bytes=N]``: the run has an SDD report of about N bytes, generated and streamed
  in 64 KiB chunks (the ruleset needs no ``run_data_discovery`` task then).

Run log. ``GET /api/runs/{id}/log/`` is a JSON array of runlog objects, serialised as ``[`` +
``",\\n".join(lines)`` + ``]``. Lines are planned when the run is created and become visible as
time passes, so the document only ever grows: every byte before the closing ``]`` is stable, which
is what makes ``Range: bytes=N-`` requests meaningful.
"""

from __future__ import annotations

import bisect
import json
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_datamasque.emulator.options import validate_options
from airflow_provider_datamasque.emulator.rulesets import analysis_of
from airflow_provider_datamasque.emulator.state import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ApiError,
    Store,
    iso,
)
from airflow_provider_datamasque.emulator.yamlcheck import RulesetAnalysis

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
MARKER_RE = re.compile(r"\[emulator:(fail|warnings|long|log_lines=\d+|report_bytes=\d+)\]")
RUN_MASK_TYPES = ("database", "file", "file_data_discovery")
WORKER_ID = "emulator-worker-1"


@dataclass
class Outcome:
    """What the markers asked for."""

    fail: bool = False
    warnings: bool = False
    long: bool = False
    log_lines: int = 0
    report_bytes: int | None = None

    @property
    def final_status(self) -> str:
        """Status the run reaches if nobody cancels it."""
        if self.fail:
            return "failed"
        return "finished_with_warnings" if self.warnings else "finished"


def parse_markers(name: str, ruleset_yaml: str) -> Outcome:
    """Collect markers from the run name and from comment lines of the ruleset."""
    texts = [name] + [line[line.index("#") :] for line in ruleset_yaml.splitlines() if "#" in line]
    outcome = Outcome()
    for text in texts:
        for marker in MARKER_RE.findall(text):
            key, _, value = marker.partition("=")
            if key == "log_lines":
                outcome.log_lines = int(value)
            elif key == "report_bytes":
                outcome.report_bytes = int(value)
            else:
                setattr(outcome, key, True)
    return outcome


@dataclass
class LogLine:
    """A planned log line; ``offset`` is seconds after the run's creation."""

    offset: float
    level: int
    message: str
    status: str


@dataclass
class Run:
    """One masking run. Mutated only under the store lock."""

    id: int
    name: str
    mask_type: str
    source: dict[str, Any]
    destination: dict[str, Any] | None
    ruleset_id: str
    ruleset_name: str
    options: dict[str, Any]
    outcome: Outcome
    analysis: RulesetAnalysis
    duration: float
    created_mono: float
    created_wall: float
    plan: list[LogLine] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    task_offsets: list[float] = field(default_factory=list)
    cancel_at: float | None = None
    cancel_delay: float = 0.0
    forced: str | None = None
    forced_at: float = 0.0
    log_prefix: bytearray = field(default_factory=lambda: bytearray(b"["))
    log_count: int = 0

    def elapsed(self) -> float:
        """Seconds since creation (monotonic)."""
        return time.monotonic() - self.created_mono

    def natural_status(self, e: float) -> str:
        """Status at ``e`` if nothing interferes."""
        d = self.duration
        if e >= d:
            return self.outcome.final_status
        if e < 0.1 * d:
            return "queued"
        return "validating" if e < 0.2 * d else "running"

    def status_at(self, e: float) -> str:
        """Status at elapsed time ``e``, honouring cancellation and forced statuses."""
        if self.cancel_at is not None and e >= self.cancel_at:
            return "cancelled" if e >= self.cancel_at + self.cancel_delay else "cancelling"
        if self.forced is not None and e >= self.forced_at:
            return self.forced
        return self.natural_status(e)

    def end_offset(self) -> float | None:
        """Elapsed time at which the run became (or becomes) terminal; None if never."""
        if self.cancel_at is not None:
            return self.cancel_at + self.cancel_delay
        if self.forced is not None:
            return self.forced_at if self.forced in TERMINAL_STATUSES else None
        return self.duration

    def has_sdd_report(self, status: str) -> bool:
        """Reports exist once terminal, for discovery rulesets or a report_bytes marker."""
        wanted = self.analysis.has_discovery or self.outcome.report_bytes is not None
        return wanted and status in TERMINAL_STATUSES

    def view(self) -> dict[str, Any]:
        """The run object as the API returns it (newer and older field names)."""
        e = self.elapsed()
        status = self.status_at(e)
        started_at = 0.1 * self.duration
        started = e >= started_at and (self.cancel_at is None or self.cancel_at >= started_at)
        end = self.end_offset() if status in TERMINAL_STATUSES else None
        dest = self.destination
        return {
            "id": self.id,
            "name": self.name,
            "status": status,
            "mask_type": self.mask_type,
            "source_connection": self.source["id"],
            "source_connection_name": self.source["name"],
            "destination_connection": dest["id"] if dest else None,
            "destination_connection_name": dest["name"] if dest else "",
            "connection": self.source["id"],
            "connection_name": self.source["name"],
            "ruleset": self.ruleset_id,
            "ruleset_name": self.ruleset_name,
            "created_time": iso(self.created_wall),
            "start_time": iso(self.created_wall + started_at) if started else None,
            "end_time": None if end is None else iso(self.created_wall + end),
            "options": dict(self.options),
            "has_sdd_report": self.has_sdd_report(status),
            "error_message": self._error_message() if status == "failed" else None,
        }

    def _error_message(self) -> str:
        if self.forced == "failed":
            return "Run marked as failed."
        return "Task mask_table failed: emulated failure requested by [emulator:fail]."

    def _append(self, offset: float, level: int, message: str, status: str) -> None:
        self.plan.append(LogLine(offset, level, message, status))
        self.offsets.append(offset)

    def truncate_plan(self, e: float) -> None:
        """Drop planned lines after ``e``; they were never visible, so the log stays append-only."""
        keep = bisect.bisect_right(self.offsets, e)
        del self.plan[keep:]
        del self.offsets[keep:]

    def log_document(self) -> bytes:
        """The log JSON served now; extends the cached serialised prefix as lines appear."""
        visible = bisect.bisect_right(self.offsets, self.elapsed())
        if visible > self.log_count:
            is_dry_run = bool(self.options.get("dry_run"))
            parts = []
            for line in self.plan[self.log_count : visible]:
                entry = {
                    "timestamp": iso(self.created_wall + line.offset),
                    "log_level": line.level,
                    "message": line.message,
                    "run": self.id,
                    "worker_id": WORKER_ID,
                    "run_status": line.status,
                    "is_dry_run": is_dry_run,
                }
                parts.append(json.dumps(entry).encode())
            if self.log_count:
                self.log_prefix += b",\n"
            self.log_prefix += b",\n".join(parts)
            self.log_count = visible
        return bytes(self.log_prefix) + b"]"


def rows_for_table(run_id: int, table: str) -> int:
    """Deterministic, plausible row count for a table."""
    return 1000 + (zlib.crc32(f"{run_id}:{table}".encode()) % 99000)


def _plan(run: Run) -> None:
    d = run.duration
    tasks = run.analysis.tasks
    run._append(0.0, INFO, f"Run {run.id} queued on connection '{run.source['name']}'.", "queued")
    run._append(0.1 * d, INFO, f"Validating ruleset '{run.ruleset_name}'.", "validating")
    run._append(0.2 * d, INFO, f"Ruleset valid; starting {len(tasks)} task(s).", "running")
    lines: list[LogLine] = []

    def spread(index: int, count: int, level: int, message: str) -> None:
        offset = 0.2 * d + 0.8 * d * (index + 0.5) / count
        lines.append(LogLine(offset, level, message, run.natural_status(offset)))

    for i, task in enumerate(tasks):
        if task.type == "mask_table":
            message = f"Masked table {task.table}: {rows_for_table(run.id, task.table)} rows"
        elif task.type == "run_data_discovery":
            message = "Sensitive data discovery completed."
        else:
            message = f"Completed task {task.type}{' on ' + task.table if task.table else ''}."
        spread(i, len(tasks), INFO, message)
        run.task_offsets.append(lines[-1].offset)
    for i in range(run.outcome.log_lines):
        spread(
            i, run.outcome.log_lines, INFO, f"Progress: batch {i + 1} of {run.outcome.log_lines} processed."
        )
    if run.outcome.warnings:
        spread(1, 4, WARNING, "Column 'notes' contains values longer than the mask output; truncated.")
        spread(2, 4, WARNING, "Table 'audit_log' has no primary key; masked without a key.")
    lines.sort(key=lambda line: line.offset)
    for line in lines:
        run._append(line.offset, line.level, line.message, line.status)
    final = run.outcome.final_status
    if run.outcome.fail:
        run._append(d, ERROR, run._error_message(), final)
    run._append(d, INFO, f"Run finished with status {final}", final)


def _lookup(store: Store, data: dict[str, Any], keys: tuple[str, ...], table: dict[str, Any]) -> Any:
    key = next((k for k in keys if data.get(k)), keys[0])
    value = data.get(key)
    if not value:
        raise ApiError(400, {key: ["This field is required."]})
    if not isinstance(value, str) or value not in table:
        raise ApiError(400, {key: [f'Invalid pk "{value}" - object does not exist.']})
    return table[value]


def create_run(store: Store, data: Any, run_seconds: float) -> Run:
    """POST /api/runs/: validate like the server, refuse a second active run per connection."""
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    with store.lock:
        errors: dict[str, Any] = {}
        options: dict[str, Any] = {}
        conn: dict[str, Any] = {}
        ruleset: dict[str, Any] = {}
        try:
            options, _secret = validate_options(data.get("options"))
        except ApiError as exc:
            errors.update(exc.body)
        try:
            conn = _lookup(store, data, ("source_connection", "connection"), store.connections)
        except ApiError as exc:
            errors.update(exc.body)
        try:
            ruleset = _lookup(store, data, ("ruleset",), store.rulesets)
        except ApiError as exc:
            errors.update(exc.body)
        mask_type = str(
            data.get("mask_type") or (ruleset.get("mask_type") if ruleset else None) or "database"
        )
        if mask_type not in RUN_MASK_TYPES:
            errors["mask_type"] = [f'"{mask_type}" is not a valid choice.']
        if errors:
            raise ApiError(400, errors)
        if ruleset["is_valid"] != "valid":
            raise ApiError(400, {"ruleset": ["Cannot start run on invalid ruleset."]})
        destination = None
        file_masking = mask_type == "file" or ruleset["mask_type"] == "file" or conn["mask_type"] == "file"
        if data.get("destination_connection"):
            destination = _lookup(store, data, ("destination_connection",), store.connections)
        elif file_masking and mask_type != "file_data_discovery":
            raise ApiError(400, {"destination_connection": ["This field is required for file masking runs."]})
        for other in store.runs.values():
            if other.source["id"] == conn["id"] and other.status_at(other.elapsed()) in ACTIVE_STATUSES:
                detail = f"A run is already active on connection '{conn['name']}' (run {other.id})."
                raise ApiError(409, {"detail": detail})
        name = data.get("name") or ruleset["name"]
        outcome = parse_markers(str(name), ruleset["config_yaml"])
        run = Run(
            id=store.next_id("run"),
            name=str(name),
            mask_type=mask_type,
            source={"id": conn["id"], "name": conn["name"]},
            destination={"id": destination["id"], "name": destination["name"]} if destination else None,
            ruleset_id=ruleset["id"],
            ruleset_name=ruleset["name"],
            options=options,
            outcome=outcome,
            analysis=analysis_of(ruleset),
            duration=max(0.0, run_seconds) * (100 if outcome.long else 1),
            created_mono=time.monotonic(),
            created_wall=time.time(),
        )
        _plan(run)
        store.runs[run.id] = run
        store.runs_created += 1
        return run


def get_run(store: Store, run_id: int) -> Run:
    """Run or 404."""
    run = store.runs.get(run_id)
    if run is None:
        raise ApiError(404, {"detail": "Not found."})
    return run


def cancel_run(store: Store, run_id: int, run_seconds: float) -> dict[str, Any]:
    """POST /api/runs/{id}/cancel/: active -> cancelling; otherwise 400."""
    with store.lock:
        run = get_run(store, run_id)
        e = run.elapsed()
        status = run.status_at(e)
        if status == "cancelling":
            raise ApiError(400, {"detail": "Run is already cancelling"})
        if status in TERMINAL_STATUSES:
            raise ApiError(400, {"detail": f"Run is already {status}"})
        _cancel(run, e, run_seconds)
        return run.view()


def _cancel(run: Run, e: float, run_seconds: float) -> None:
    run.truncate_plan(e)
    run.forced = None
    run.cancel_at = e
    run.cancel_delay = min(0.2 * run_seconds, 1.0)
    run._append(e, WARNING, "Cancellation requested.", "cancelling")
    run._append(e + run.cancel_delay, INFO, "Run finished with status cancelled", "cancelled")


def force_status(store: Store, run_id: int, status: str, run_seconds: float) -> None:
    """Test hook: put a run into ``status`` now (e.g. someone else cancelled it)."""
    with store.lock:
        run = store.runs[run_id]
        e = run.elapsed()
        if status == "cancelling":
            _cancel(run, e, run_seconds)
            return
        if status == "cancelled":
            _cancel(run, e, 0.0)
            return
        run.truncate_plan(e)
        run.cancel_at = None
        run.forced, run.forced_at = status, e
        if status in TERMINAL_STATUSES:
            if status == "failed":
                run._append(e, ERROR, run._error_message(), status)
            run._append(e, INFO, f"Run finished with status {status}", status)
