"""Run log growth (append-only, Range 206) and SDD / run reports, including a large streamed one."""

from __future__ import annotations

import itertools
import json
import socket
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from airflow_provider_datamasque.emulator import DataMasqueEmulator

Seeded = Callable[..., tuple[str, str]]


def test_log_grows_append_only_and_supports_range(api: Any, emu: DataMasqueEmulator, seeded: Seeded) -> None:
    emu.run_seconds = 1.0
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset, name="[emulator:log_lines=40]").json()["id"]
    snapshots: list[bytes] = []
    while True:
        resp = api.get(f"/api/runs/{run_id}/log/")
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
        snapshots.append(resp.content)
        if b"Run finished with status" in resp.content:
            break
        time.sleep(0.05)
    assert len({len(s) for s in snapshots}) > 3, "the log should grow while the run runs"
    for earlier, later in itertools.pairwise(snapshots):
        assert later[: len(earlier) - 1] == earlier[:-1], "served bytes must never change"
        parsed_earlier, parsed_later = json.loads(earlier), json.loads(later)
        assert parsed_later[: len(parsed_earlier)] == parsed_earlier
    final = json.loads(snapshots[-1])
    assert final[0]["message"].startswith(f"Run {run_id} queued")
    assert {"timestamp", "log_level", "message", "run", "worker_id", "run_status", "is_dry_run"} <= set(
        final[0]
    )
    assert any(line["message"].startswith("Masked table customers: ") for line in final)
    assert sum(line["message"].startswith("Progress:") for line in final) == 40
    assert api.get(f"/api/runs/{run_id}/log/").content == snapshots[-1]  # stable once terminal

    document = snapshots[-1]
    offset = len(snapshots[0]) - 1
    partial = api.get(f"/api/runs/{run_id}/log/", headers={"Range": f"bytes={offset}-"})
    assert partial.status_code == 206
    assert partial.headers["Content-Range"] == f"bytes {offset}-{len(document) - 1}/{len(document)}"
    assert partial.content == document[offset:]
    bounded = api.get(f"/api/runs/{run_id}/log/", headers={"Range": "bytes=0-9"})
    assert bounded.status_code == 206 and bounded.content == document[:10]
    beyond = api.get(f"/api/runs/{run_id}/log/", headers={"Range": f"bytes={len(document)}-"})
    assert beyond.status_code == 416


def test_ten_thousand_log_lines_serialise_fast(api: Any, emu: DataMasqueEmulator, seeded: Seeded) -> None:
    emu.run_seconds = 0.0
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset, name="[emulator:log_lines=10000]").json()["id"]
    first = api.get(f"/api/runs/{run_id}/log/")
    assert len(first.json()) > 10000
    started = time.perf_counter()
    for _ in range(5):
        assert api.get(f"/api/runs/{run_id}/log/").content == first.content
    assert (time.perf_counter() - started) / 5 < 0.2


def test_sdd_report_404_until_terminal_then_csv(
    api: Any, emu: DataMasqueEmulator, seeded: Seeded, sdd_yaml: str
) -> None:
    emu.run_seconds = 0.5
    conn, ruleset = seeded(sdd_yaml)
    run_id = api.start_run(conn, ruleset).json()["id"]
    early = api.get(f"/api/runs/{run_id}/sdd-report/")
    assert early.status_code == 404 and early.json() == {"detail": "No sdd report found for this run."}
    assert api.get(f"/api/runs/{run_id}/run-report/").status_code == 404
    final = api.wait_terminal(run_id)
    assert final["has_sdd_report"] is True
    report = api.get(f"/api/runs/{run_id}/sdd-report/")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    lines = report.text.strip().splitlines()
    assert (
        lines[0]
        == "table_schema,table_name,column_name,data_type,sensitive_data_category,matched_keyword,is_masked"
    )
    rows = [line.split(",") for line in lines[1:]]
    assert ["public", "customers", "phone", "varchar(32)", "PII", "phone", "true"] in rows
    assert any(r[-1] == "false" for r in rows), "some sensitive columns should be unmasked"
    assert {r[4] for r in rows} <= {"PII", "PHI", "PCI"}
    run_report = api.get(f"/api/runs/{run_id}/run-report/")
    assert run_report.status_code == 200 and "mask_table,customers,finished" in run_report.text


def test_no_sdd_report_without_discovery_task(api: Any, seeded: Seeded) -> None:
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset).json()["id"]
    assert api.wait_terminal(run_id)["has_sdd_report"] is False
    assert api.get(f"/api/runs/{run_id}/sdd-report/").status_code == 404


def test_large_report_is_streamed_with_bounded_memory(
    emu: DataMasqueEmulator, api: Any, seeded: Seeded
) -> None:
    emu.run_seconds = 0.0
    size = 50 * 1024 * 1024
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset, name=f"[emulator:report_bytes={size}]").json()["id"]
    token = api.session.headers["Authorization"]
    tracemalloc.start()
    try:
        with socket.create_connection(("127.0.0.1", emu.port)) as sock:
            request = (
                f"GET /api/runs/{run_id}/sdd-report/ HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n"
            )
            sock.sendall(request.encode())
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(
                next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
            )
            received, tail, first = len(rest), rest[-200:], rest[:200]
            while received < length:
                chunk = sock.recv(1 << 20)
                assert chunk
                received += len(chunk)
                tail = (tail + chunk)[-200:]
                first = first if len(first) >= 200 else (first + chunk)[:200]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(length - size) < 200 and received == length
    assert first.startswith(b"table_schema,table_name") and tail.endswith(b"\n")
    assert peak < 8 * 1024 * 1024, f"server+client peak {peak} bytes: report must be streamed"
