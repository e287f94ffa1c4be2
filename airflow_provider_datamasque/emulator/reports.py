"""Run reports: the SDD (sensitive data discovery) CSV and the run-report CSV.

Big SDD reports (``[emulator:report_bytes=N]``) are produced by a generator of ~64 KiB chunks with a
length known up front, so the server can send a correct Content-Length without ever holding the
whole body in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from airflow_provider_datamasque.emulator.runs import Run, rows_for_table
from airflow_provider_datamasque.emulator.state import TERMINAL_STATUSES, ApiError

SDD_HEADER = (
    "table_schema,table_name,column_name,data_type,sensitive_data_category,matched_keyword,is_masked\n"
)
CHUNK = 64 * 1024
# column -> (data type, category, matched keyword)
KNOWN_COLUMNS: dict[str, tuple[str, str, str]] = {
    "email": ("varchar(255)", "PII", "email"),
    "phone": ("varchar(32)", "PII", "phone"),
    "first_name": ("varchar(100)", "PII", "first name"),
    "last_name": ("varchar(100)", "PII", "last name"),
    "address": ("varchar(255)", "PII", "address"),
    "ssn": ("char(11)", "PII", "social security number"),
    "date_of_birth": ("date", "PHI", "date of birth"),
    "diagnosis": ("text", "PHI", "diagnosis"),
    "medicare_number": ("varchar(20)", "PHI", "medicare"),
    "card_number": ("varchar(19)", "PCI", "credit card"),
    "cvv": ("char(3)", "PCI", "cvv"),
    "iban": ("varchar(34)", "PCI", "bank account"),
}
EXTRA_CANDIDATES = tuple(KNOWN_COLUMNS)
DEFAULT_TABLES = ("customers", "patients", "payments")
# Equal-length tails keep every generated row the same size, so the total length is exact.
BULK_TAILS = ("PII,email,true", "PCI,card,false", "PHI,icd10,true")


def _require_terminal(run: Run, what: str) -> None:
    status = run.status_at(run.elapsed())
    if what == "sdd" and not run.has_sdd_report(status):
        raise ApiError(404, {"detail": "No sdd report found for this run."})
    if status not in TERMINAL_STATUSES:
        raise ApiError(404, {"detail": f"No {what} report found for this run."})


def sdd_report(run: Run) -> tuple[int, Iterator[bytes]]:
    """(content length, chunks) for GET /api/runs/{id}/sdd-report/, or raise 404."""
    _require_terminal(run, "sdd")
    if run.outcome.report_bytes is not None:
        return _bulk_report(run.outcome.report_bytes)
    body = _small_report(run).encode()
    return len(body), iter([body])


def _small_report(run: Run) -> str:
    masked = run.analysis.masked_columns()
    tables = sorted(masked) or list(DEFAULT_TABLES)
    rows = [SDD_HEADER]
    for table in tables:
        columns = sorted(masked.get(table, set()))
        seed = zlib.crc32(f"{run.id}:{table}".encode())
        extras = [c for c in EXTRA_CANDIDATES if c not in columns]
        unmasked = {extras[seed % len(extras)], extras[(seed // 7) % len(extras)]}
        for column in columns + sorted(unmasked):
            dtype, category, keyword = KNOWN_COLUMNS.get(column, ("varchar(255)", "PII", column))
            is_masked = "true" if column in columns else "false"
            rows.append(f"public,{table},{column},{dtype},{category},{keyword},{is_masked}\n")
    return "".join(rows)


def _bulk_row(i: int) -> str:
    return f"public,bulk_{i // 16:08d},col_{i % 16:02d},varchar(255),{BULK_TAILS[i % 3]}\n"


# 16 rows share a table; their tails depend only on the table number mod 3, so three templates
# (with the table number substituted per block) generate rows ~16x faster than formatting each.
_PLACEHOLDER = "########"
_BLOCKS = tuple(
    "".join(_bulk_row(16 * t + c).replace(f"bulk_{t:08d}", "bulk_" + _PLACEHOLDER) for c in range(16))
    for t in range(3)
)


def _bulk_rows(start: int, stop: int) -> str:
    """Rows ``start`` (a multiple of 16) to ``stop`` exclusive, identical to ``_bulk_row`` each."""
    parts = [_BLOCKS[t % 3].replace(_PLACEHOLDER, f"{t:08d}") for t in range(start // 16, stop // 16)]
    parts.extend(_bulk_row(i) for i in range(max(start, stop - stop % 16), stop))
    return "".join(parts)


def _bulk_report(target: int) -> tuple[int, Iterator[bytes]]:
    header = SDD_HEADER.encode()
    row_len = len(_bulk_row(0))
    rows = max(0, (target - len(header)) // row_len)
    per_chunk = max(16, (CHUNK // row_len) // 16 * 16)

    def chunks() -> Iterator[bytes]:
        yield header
        for start in range(0, rows, per_chunk):
            yield _bulk_rows(start, min(rows, start + per_chunk)).encode()

    return len(header) + rows * row_len, chunks()


def run_report(run: Run) -> bytes:
    """GET /api/runs/{id}/run-report/: one CSV row per task, once the run is terminal."""
    _require_terminal(run, "run")
    status = run.status_at(run.elapsed())
    end = run.end_offset() or 0.0
    lines = ["task_index,task_type,table_name,status,rows_processed\n"]
    for index, task in enumerate(run.analysis.tasks):
        planned = run.task_offsets[index] if index < len(run.task_offsets) else 0.0
        if status == "failed" and index == len(run.analysis.tasks) - 1:
            task_status = "failed"
        elif planned > end or (status == "cancelled" and planned > end - run.cancel_delay):
            task_status = "cancelled"
        else:
            task_status = "finished"
        rows = (
            rows_for_table(run.id, task.table)
            if task.type == "mask_table" and task_status == "finished"
            else 0
        )
        lines.append(f"{index + 1},{task.type},{task.table},{task_status},{rows}\n")
    return "".join(lines).encode()
