"""Run lifecycle, cancel, conflicts, options validation, outcome markers and pagination."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator

Seeded = Callable[..., tuple[str, str]]


def test_lifecycle_reaches_finished_through_every_phase(
    emu: DataMasqueEmulator, api: Any, seeded: Seeded
) -> None:
    emu.run_seconds = 1.0
    conn, ruleset = seeded()
    created = api.start_run(conn, ruleset)
    assert created.status_code == 201
    run = created.json()
    assert run["id"] == 1 and run["status"] == "queued"
    assert run["source_connection"] == run["connection"] == conn
    assert run["source_connection_name"] == run["connection_name"] == "pg"
    assert run["destination_connection_name"] == "" and run["ruleset"] == ruleset
    assert run["start_time"] is None and run["end_time"] is None
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = api.get("/api/runs/1/").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "finished":
            break
        time.sleep(0.01)
    assert seen == ["queued", "validating", "running", "finished"]
    final = api.get("/api/runs/1").json()  # no trailing slash is accepted too
    assert final["end_time"] and final["start_time"] and final["has_sdd_report"] is False
    assert emu.get_run(1)["status"] == "finished"
    assert emu.runs_created == 1


def test_run_ids_increase_and_unknown_run_is_404(api: Any, seeded: Seeded) -> None:
    conn, ruleset = seeded()
    conn2 = api.emu.create_connection(
        name="pg2", db_type="mysql", host="h", port=3306, database="d", user="u", password="p"
    )["id"]
    assert api.start_run(conn, ruleset).json()["id"] == 1
    assert api.start_run(conn2, ruleset).json()["id"] == 2
    missing = api.get("/api/runs/99/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    assert api.post("/api/runs/99/cancel/").status_code == 404


def test_cancel_goes_cancelling_then_cancelled_and_second_cancel_is_400(api: Any, seeded: Seeded) -> None:
    api.emu.run_seconds = 5.0
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset).json()["id"]
    resp = api.post(f"/api/runs/{run_id}/cancel/")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelling"
    again = api.post(f"/api/runs/{run_id}/cancel/")
    assert again.status_code == 400 and "already" in again.json()["detail"]
    final = api.wait_terminal(run_id, timeout=3)
    assert final["status"] == "cancelled" and final["end_time"]
    done = api.post(f"/api/runs/{run_id}/cancel/")
    assert done.status_code == 400 and done.json()["detail"].startswith("Run is already")


def test_second_active_run_on_same_connection_is_409(api: Any, seeded: Seeded) -> None:
    conn, ruleset = seeded()
    first = api.start_run(conn, ruleset).json()
    second = api.start_run(conn, ruleset)
    assert second.status_code == 409
    assert second.json() == {"detail": f"A run is already active on connection 'pg' (run {first['id']})."}
    api.wait_terminal(first["id"])
    assert api.start_run(conn, ruleset).status_code == 201


def test_source_connection_alias_and_file_runs_need_destination(api: Any, emu: DataMasqueEmulator) -> None:
    src = emu.create_connection(
        name="s3in", type="s3_connection", bucket="b", base_directory="in", mask_type="file"
    )
    dst = emu.create_connection(name="s3out", type="s3_connection", bucket="b", base_directory="out")
    ruleset = emu.create_ruleset("f", "version: '1.0'\ntasks:\n  - type: mask_file\n", mask_type="file")
    body = {"source_connection": src["id"], "ruleset": ruleset["id"], "options": {}}
    missing = api.post("/api/runs/", json=body)
    assert missing.status_code == 400 and "destination_connection" in missing.json()
    ok = api.post("/api/runs/", json=body | {"destination_connection": dst["id"]})
    assert ok.status_code == 201
    run = ok.json()
    assert run["mask_type"] == "file" and run["destination_connection_name"] == "s3out"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, {"options": ["This field is required."]}),
        ({"bogus": 1}, {"options": ["Unknown option 'bogus'."]}),
        ({"batch_size": 0}, {"options": ["Option 'batch_size' must be a positive integer."]}),
        ({"max_rows": "ten"}, {"options": ["Option 'max_rows' must be a positive integer."]}),
        ({"run_secret": "short"}, {"options": ["Run secret must be between 16 and 256 characters long."]}),
        ({"run_secret": "x" * 257}, {"options": ["Run secret must be between 16 and 256 characters long."]}),
        ({"dry_run": "maybe"}, {"options": ["Option 'dry_run' must be a boolean."]}),
    ],
)
def test_options_validation(api: Any, seeded: Seeded, options: Any, expected: dict[str, Any]) -> None:
    conn, ruleset = seeded()
    body: dict[str, Any] = {"connection": conn, "ruleset": ruleset}
    if options is not None:
        body["options"] = options
    resp = api.post("/api/runs/", json=body)
    assert resp.status_code == 400
    assert resp.json() == expected
    assert api.emu.runs_created == 0


def test_reference_style_string_options_are_accepted_and_secret_is_hidden(api: Any, seeded: Seeded) -> None:
    conn, ruleset = seeded()
    options = {"dry_run": False, "max_rows": "1000000", "batch_size": "10000", "run_secret": "s" * 20}
    run = api.start_run(conn, ruleset, options=options, name="test_20200430").json()
    assert run["options"]["batch_size"] == 10000 and run["options"]["max_rows"] == 1000000
    assert run["options"]["has_run_secret"] is True
    assert "s" * 20 not in api.get(f"/api/runs/{run['id']}/").text
    assert run["name"] == "test_20200430"


def test_unknown_connection_ruleset_and_invalid_ruleset(
    api: Any, emu: DataMasqueEmulator, seeded: Seeded
) -> None:
    conn, _ruleset = seeded()
    resp = api.post("/api/runs/", json={"connection": "nope", "ruleset": "nope", "options": {}})
    assert resp.status_code == 400 and set(resp.json()) == {"connection", "ruleset"}
    bad = emu.create_ruleset("bad", "tasks: [")
    resp = api.start_run(conn, bad["id"])
    assert resp.status_code == 400
    assert resp.json() == {"ruleset": ["Cannot start run on invalid ruleset."]}


@pytest.mark.parametrize(
    ("where", "marker", "status", "level"),
    [
        ("name", "[emulator:fail]", "failed", 40),
        ("yaml", "[emulator:fail]", "failed", 40),
        ("name", "[emulator:warnings]", "finished_with_warnings", 30),
        ("yaml", "[emulator:warnings]", "finished_with_warnings", 30),
    ],
)
def test_outcome_markers(
    api: Any, seeded: Seeded, mask_yaml: str, where: str, marker: str, status: str, level: int
) -> None:
    yaml_text = mask_yaml + f"# {marker}\n" if where == "yaml" else mask_yaml
    conn, ruleset = seeded(yaml_text)
    run_id = api.start_run(conn, ruleset, name=f"nightly {marker}" if where == "name" else "nightly").json()[
        "id"
    ]
    final = api.wait_terminal(run_id)
    assert final["status"] == status
    log = api.get(f"/api/runs/{run_id}/log/").json()
    assert any(line["log_level"] == level for line in log)
    assert log[-1]["message"] == f"Run finished with status {status}"
    if status == "failed":
        assert final["error_message"] and "failed" in final["error_message"]
    else:
        assert final["error_message"] is None


def test_long_marker_and_log_lines_marker(api: Any, seeded: Seeded) -> None:
    api.emu.run_seconds = 0.2
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset, name="[emulator:long]").json()["id"]
    time.sleep(0.4)  # twice run_seconds: a normal run would be finished, a long one (20 s) is queued
    assert api.get(f"/api/runs/{run_id}/").json()["status"] == "queued"
    api.emu.set_run_status(run_id, "cancelled")
    assert api.get(f"/api/runs/{run_id}/").json()["status"] == "cancelled"
    other = api.start_run(conn, ruleset, name="[emulator:log_lines=250]").json()["id"]
    api.wait_terminal(other)
    messages = [line["message"] for line in api.get(f"/api/runs/{other}/log/").json()]
    assert sum(m.startswith("Progress: batch") for m in messages) == 250


def test_set_run_status_failed_is_visible_to_clients(
    api: Any, emu: DataMasqueEmulator, seeded: Seeded
) -> None:
    emu.run_seconds = 10
    conn, ruleset = seeded()
    run_id = api.start_run(conn, ruleset).json()["id"]
    emu.set_run_status(run_id, "failed")
    run = api.get(f"/api/runs/{run_id}/").json()
    assert run["status"] == "failed" and run["error_message"]
    with pytest.raises(ValueError):
        emu.set_run_status(run_id, "bogus")


def test_list_filters_and_pagination_envelope(api: Any, emu: DataMasqueEmulator, seeded: Seeded) -> None:
    emu.run_seconds = 0.0
    conn, ruleset = seeded()
    for i in range(5):
        assert api.start_run(conn, ruleset, name=f"run-{i}").status_code == 201
    bare = api.get("/api/runs/").json()
    assert isinstance(bare, list) and [r["id"] for r in bare] == [5, 4, 3, 2, 1]
    assert [r["name"] for r in api.get("/api/runs/", params={"name": "run-3"}).json()] == ["run-3"]
    assert len(api.get("/api/runs/", params={"run_status": "finished", "ruleset_name": "rs"}).json()) == 5
    assert api.get("/api/runs/", params={"run_status": "running"}).json() == []
    assert len(api.get("/api/runs/", params={"connection_ruleset_name": "PG"}).json()) == 5
    page = api.get("/api/runs/", params={"limit": 2, "offset": 0}).json()
    assert page["count"] == 5 and [r["id"] for r in page["results"]] == [5, 4]
    assert page["previous"] is None and page["next"].startswith(emu.url + "/api/runs/?")
    ids = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api.session.get(page["next"]).json()
        ids += [r["id"] for r in page["results"]]
    assert ids == [5, 4, 3, 2, 1] and page["previous"]
