"""Runs: statuses, option validation, list/get/cancel, start_run (never twice), reports."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueConflictError,
    DataMasqueNotFoundError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.hooks.runs import (
    ACTIVE_STATUSES,
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    RunStatus,
    run_summary,
    validate_run_options,
)

from ._support import BASE, CONN_UUID, FILE_RULESET_UUID, RULESET_UUID, calls

RUNS = f"{BASE}/api/runs/"

# -- RunStatus ------------------------------------------------------------------------------------

ALL_STATUSES = [
    "queued",
    "validating",
    "running",
    "finished",
    "finished_with_warnings",
    "failed",
    "cancelling",
    "cancelled",
]


@pytest.mark.parametrize("value", ALL_STATUSES)
def test_run_status_parses_every_value(value):
    status = RunStatus.parse(value)
    assert status is not None
    assert status.value == value
    assert RunStatus.parse(value.upper()) is status
    assert RunStatus.parse(f"  {value} ") is status
    assert RunStatus.parse(status) is status


def test_run_status_enum_is_exactly_the_documented_set():
    assert sorted(s.value for s in RunStatus) == sorted(ALL_STATUSES)


@pytest.mark.parametrize("value", ["paused", "", None, 3, "finished!", "success"])
def test_unknown_status(value):
    assert RunStatus.parse(value) is None
    assert RunStatus.is_success(value) is False
    assert RunStatus.is_terminal(value) is False


def test_status_sets():
    assert {s.value for s in TERMINAL_STATUSES} == {
        "finished",
        "finished_with_warnings",
        "failed",
        "cancelled",
    }
    assert {s.value for s in SUCCESS_STATUSES} == {"finished", "finished_with_warnings"}
    assert {s.value for s in FAILURE_STATUSES} == {"failed", "cancelled"}
    assert {s.value for s in ACTIVE_STATUSES} == {"queued", "validating", "running", "cancelling"}
    assert SUCCESS_STATUSES | FAILURE_STATUSES == TERMINAL_STATUSES
    assert not SUCCESS_STATUSES & FAILURE_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    assert set(RunStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("value", "terminal", "success"),
    [
        ("queued", False, False),
        ("validating", False, False),
        ("running", False, False),
        ("cancelling", False, False),
        ("finished", True, True),
        ("finished_with_warnings", True, True),
        ("failed", True, False),
        ("cancelled", True, False),
    ],
)
def test_is_terminal_and_is_success(value, terminal, success):
    assert RunStatus.is_terminal(value) is terminal
    assert RunStatus.is_success(value) is success
    # Enum members work as well as the raw strings.
    member = RunStatus(value)
    assert RunStatus.is_terminal(member) is terminal
    assert RunStatus.is_success(member) is success


# -- validate_run_options -------------------------------------------------------------------------


def test_validate_options_accepts_valid_and_coerces_numeric_strings():
    clean = validate_run_options(
        {
            "dry_run": True,
            "batch_size": "5000",
            "max_rows": 10,
            "buffer_size": "10000",
            "continue_on_failure": False,
            "run_secret": "s" * 20,
            "diagnostic_logging": True,
            "auto_pull_branch": "main",
            "disable_instance_secret": None,
        }
    )
    assert clean == {
        "dry_run": True,
        "batch_size": 5000,
        "max_rows": 10,
        "buffer_size": 10000,
        "continue_on_failure": False,
        "run_secret": "s" * 20,
        "diagnostic_logging": True,
        "auto_pull_branch": "main",
    }


def test_validate_options_none_and_empty():
    assert validate_run_options(None) == {}
    assert validate_run_options({}) == {}


def test_unknown_option_is_named_with_the_allowed_list():
    with pytest.raises(DataMasqueConfigError) as info:
        validate_run_options({"batchsize": 10})
    assert "'batchsize'" in str(info.value)
    assert "batch_size" in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": True},
        {"batch_size": 1.5},
        {"batch_size": "ten"},
        {"batch_size": 0},
        {"max_rows": -1},
        {"buffer_size": "0"},
        {"dry_run": "yes"},
        {"dry_run": 1},
        {"continue_on_failure": "false"},
        {"auto_pull_branch": 3},
        {"run_secret": 12345678901234567890123},
    ],
)
def test_bad_option_values(options):
    with pytest.raises(DataMasqueConfigError) as info:
        validate_run_options(options)
    assert repr(next(iter(options))) in str(info.value)


def test_options_must_be_a_mapping():
    with pytest.raises(DataMasqueConfigError, match="dict"):
        validate_run_options(["dry_run"])  # type: ignore[arg-type]


@pytest.mark.parametrize("secret", ["short-secret-19chars", "x" * 257, "tiny"])
def test_bad_run_secret_length_never_echoes_the_secret(secret):
    if len(secret) == 20:
        secret = secret[:19]
    with pytest.raises(DataMasqueConfigError) as info:
        validate_run_options({"run_secret": secret})
    text = str(info.value)
    assert secret not in text
    assert "run_secret" in text
    assert str(len(secret)) in text


def test_run_secret_bounds():
    assert validate_run_options({"run_secret": "a" * 20})["run_secret"] == "a" * 20
    assert validate_run_options({"run_secret": "a" * 256})["run_secret"] == "a" * 256


def test_run_summary_drops_options():
    run = {
        "id": 1,
        "name": "n",
        "status": "running",
        "options": {"run_secret": "x" * 30},
        "connection_name": "c",
    }
    summary = run_summary(run)
    assert "options" not in summary
    assert summary == {"id": 1, "name": "n", "status": "running", "connection_name": "c"}


# -- list / get / cancel --------------------------------------------------------------------------


def test_list_runs_filters_and_paging(hook, api):
    api.get(
        RUNS,
        json={"count": 2, "next": f"{BASE}/api/runs/?limit=100&offset=100", "results": [{"id": 2}]},
        complete_qs=False,
    )
    api.get(
        f"{BASE}/api/runs/?limit=100&offset=100",
        json={"next": None, "results": [{"id": 1}]},
        complete_qs=True,
    )
    runs = list(hook.list_runs(run_status="running", ruleset_name="rs", connection_ruleset_name="c"))
    assert runs == [{"id": 2}, {"id": 1}]
    first, second = calls(api, "GET", "/api/runs/")
    assert first.qs == {
        "run_status": ["running"],
        "ruleset_name": ["rs"],
        "connection_ruleset_name": ["c"],
        "limit": ["100"],
        "offset": ["0"],
    }
    assert second.qs == {"limit": ["100"], "offset": ["100"]}


def test_list_runs_bare_list_without_paging(hook, api):
    api.get(RUNS, json=[{"id": 1}, {"id": 2}])
    assert list(hook.list_runs(page_size=None)) == [{"id": 1}, {"id": 2}]
    assert api.last_request.qs == {}


def test_list_runs_drops_none_filters(hook, api):
    api.get(RUNS, json=[])
    list(hook.list_runs(page_size=25, connection_ruleset_name=None))
    assert api.last_request.qs == {"limit": ["25"], "offset": ["0"]}


def test_get_run_and_status(hook, api):
    api.get(f"{BASE}/api/runs/12/", json={"id": 12, "status": "running"})
    assert hook.get_run(12) == {"id": 12, "status": "running"}
    assert hook.get_run_status("12") == "running"


def test_get_run_rejects_ids_that_change_the_url(hook, requests_mock):
    for bad in ("1/../2", "", "1?x=1"):
        with pytest.raises(DataMasqueConfigError):
            hook.get_run(bad)
    assert requests_mock.request_history == []


def test_get_run_not_found(hook, api):
    api.get(f"{BASE}/api/runs/99/", status_code=404, json={"detail": "Not found."})
    with pytest.raises(DataMasqueNotFoundError, match=r"Not found\."):
        hook.get_run(99)


def test_cancel_run(hook, api):
    api.post(f"{BASE}/api/runs/5/cancel/", json={"id": 5, "status": "cancelling"})
    assert hook.cancel_run(5) == {"id": 5, "status": "cancelling"}
    assert api.last_request.method == "POST"
    assert api.last_request.path == "/api/runs/5/cancel/"


def test_cancel_finished_run_is_an_error(hook, api):
    api.post(f"{BASE}/api/runs/5/cancel/", status_code=400, json={"detail": "Run is already finished"})
    with pytest.raises(DataMasqueApiError, match="Run is already finished"):
        hook.cancel_run(5)


# -- start_run ------------------------------------------------------------------------------------


def test_start_run_payload_with_ids(hook, api):
    api.post(RUNS, status_code=201, json={"id": 77, "status": "queued"})
    run = hook.start_run(
        connection=CONN_UUID,
        ruleset=RULESET_UUID,
        name="nightly",
        options={"dry_run": True, "batch_size": "50"},
    )
    assert run == {"id": 77, "status": "queued"}
    (post,) = calls(api, "POST", "/api/runs/")
    assert post.json() == {
        "name": "nightly",
        "connection": CONN_UUID,
        "ruleset": RULESET_UUID,
        "options": {"dry_run": True, "batch_size": 50},
    }
    # UUIDs are used as given: no lookups.
    assert [r.path for r in api.request_history if r.method == "GET"] == []


def test_start_run_sends_empty_options_and_generated_name(hook, api):
    api.post(RUNS, status_code=201, json={"id": 1})
    hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID)
    body = calls(api, "POST", "/api/runs/")[0].json()
    assert body["options"] == {}
    assert body["name"].startswith("airflow-")
    assert len(body["name"]) > len("airflow-")


def test_start_run_optional_fields(hook, api):
    api.post(RUNS, status_code=201, json={"id": 1})
    dest = "99999999-2222-3333-4444-555555555555"
    hook.start_run(
        connection=CONN_UUID, ruleset=RULESET_UUID, name="f", destination_connection=dest, mask_type="file"
    )
    body = calls(api, "POST", "/api/runs/")[0].json()
    assert body["destination_connection"] == dest
    assert body["mask_type"] == "file"


def test_start_run_resolves_names(hook, api):
    api.get(
        f"{BASE}/api/connections/",
        json=[{"id": CONN_UUID, "name": "prod-db"}, {"id": "other", "name": "test-db"}],
    )
    api.get(
        f"{BASE}/api/v2/rulesets/",
        json=[
            {"id": RULESET_UUID, "name": "mask-customers", "mask_type": "database"},
            {"id": "x", "name": "other"},
        ],
    )
    api.post(RUNS, status_code=201, json={"id": 3})
    hook.start_run(connection="prod-db", ruleset="mask-customers", name="r")
    body = calls(api, "POST", "/api/runs/")[0].json()
    assert body["connection"] == CONN_UUID
    assert body["ruleset"] == RULESET_UUID


def test_start_run_resolve_names_off(hook, api):
    api.post(RUNS, status_code=201, json={"id": 3})
    hook.start_run(connection="prod-db", ruleset="rs", name="r", resolve_names=False)
    body = calls(api, "POST", "/api/runs/")[0].json()
    assert (body["connection"], body["ruleset"]) == ("prod-db", "rs")


def test_start_run_validates_options_before_any_request(hook, requests_mock):
    with pytest.raises(DataMasqueConfigError, match="batchsize"):
        hook.start_run(connection="prod-db", ruleset="rs", options={"batchsize": 1})
    with pytest.raises(DataMasqueConfigError):
        hook.start_run(connection="prod-db", ruleset="rs", options={"run_secret": "too-short"})
    assert requests_mock.request_history == []


def test_start_run_server_validation_error(hook, api):
    api.post(RUNS, status_code=400, json={"ruleset": ["Cannot start run on invalid ruleset."]})
    with pytest.raises(DataMasqueApiError) as info:
        hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="r")
    assert "ruleset: Cannot start run on invalid ruleset." in str(info.value)
    assert len(calls(api, "POST", "/api/runs/")) == 1


LOST = requests.exceptions.ConnectionError("Connection aborted. RemoteDisconnected")


def test_lost_response_finds_the_created_run(hook, api):
    api.post(RUNS, [{"exc": LOST}, {"status_code": 201, "json": {"id": 999}}])
    api.get(
        RUNS,
        json={
            "next": None,
            "results": [
                {"id": 40, "name": "other-run", "source_connection": CONN_UUID},
                {"id": 41, "name": "nightly", "source_connection": CONN_UUID, "status": "queued"},
            ],
        },
    )
    run = hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="nightly")
    assert run["id"] == 41
    assert len(calls(api, "POST", "/api/runs/")) == 1


def test_lost_response_ignores_same_name_on_other_connection(hook, api):
    api.post(RUNS, [{"exc": LOST}, {"status_code": 201, "json": {"id": 50}}])
    api.get(RUNS, json=[{"id": 41, "name": "nightly", "connection": "99999999-0000-0000-0000-000000000000"}])
    run = hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="nightly")
    assert run == {"id": 50}
    assert len(calls(api, "POST", "/api/runs/")) == 2


def test_lost_response_nothing_found_resends_once(hook, api):
    api.post(RUNS, [{"exc": LOST}, {"status_code": 201, "json": {"id": 42, "name": "nightly"}}])
    api.get(RUNS, json={"next": None, "results": []})
    run = hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="nightly")
    assert run == {"id": 42, "name": "nightly"}
    posts = calls(api, "POST", "/api/runs/")
    assert len(posts) == 2
    assert posts[0].json() == posts[1].json()
    assert len(calls(api, "GET", "/api/runs/")) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_gateway_error_on_start_is_looked_up_first(hook, api, status):
    api.post(RUNS, [{"status_code": status, "text": ""}, {"status_code": 201, "json": {"id": 8}}])
    api.get(RUNS, json=[])
    assert hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n") == {"id": 8}
    assert len(calls(api, "GET", "/api/runs/")) == 1
    assert len(calls(api, "POST", "/api/runs/")) == 2


def test_read_timeout_on_start_finds_run(hook, api):
    api.post(RUNS, exc=requests.exceptions.ReadTimeout("read timed out"))
    api.get(RUNS, json=[{"id": 7, "name": "n", "source_connection": {"id": CONN_UUID}}])
    assert hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n")["id"] == 7
    assert len(calls(api, "POST", "/api/runs/")) == 1


def test_lookup_failure_after_lost_response_says_the_run_may_exist_without_resending(hook, api):
    api.post(RUNS, exc=LOST)
    api.get(RUNS, status_code=500, json={"detail": "db down"})
    with pytest.raises(DataMasqueTransportError, match="db down") as info:
        hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n")
    assert "may have started" in str(info.value)
    assert isinstance(info.value.__cause__, DataMasqueApiError)
    assert len(calls(api, "POST", "/api/runs/")) == 1


def test_lost_response_every_time_gives_up_after_max_retries(hook, api):
    api.post(RUNS, exc=LOST)
    api.get(RUNS, json=[])
    with pytest.raises(DataMasqueTransportError):
        hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n")
    assert len(calls(api, "POST", "/api/runs/")) == 3 + 1


def test_conflict_on_first_attempt(hook, api):
    api.post(RUNS, status_code=409, json={"detail": "Already running."})
    with pytest.raises(DataMasqueConflictError) as info:
        hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n")
    assert "Already running." in str(info.value)
    assert info.value.status == 409
    assert len(calls(api, "POST", "/api/runs/")) == 1
    assert calls(api, "GET", "/api/runs/") == []


def test_conflict_after_lost_response_is_our_own_run(hook, api):
    # The run was created but is not listed yet; the resend then conflicts with it.
    api.post(RUNS, [{"exc": LOST}, {"status_code": 409, "json": {"detail": "Already running."}}])
    api.get(RUNS, [{"json": []}, {"json": [{"id": 61, "name": "n", "source_connection": CONN_UUID}]}])
    assert hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, name="n")["id"] == 61
    assert len(calls(api, "POST", "/api/runs/")) == 2


def test_find_runs_newest_first(hook, api):
    api.get(
        RUNS,
        json=[
            {"id": 3, "name": "n"},
            {"id": 10, "name": "n"},
            {"id": 4, "name": "m"},
        ],
    )
    assert [r["id"] for r in hook.find_runs("n")] == [10, 3]


# -- reports --------------------------------------------------------------------------------------


def test_open_sdd_report_streams(hook, api):
    csv = "schema,table,column\npublic,customers,email\n"
    api.get(f"{BASE}/api/runs/4/sdd-report/", text=csv, headers={"Content-Type": "text/csv"})
    with hook.open_sdd_report(4) as response:
        assert b"".join(response.iter_content(8)).decode() == csv
    assert api.last_request.path == "/api/runs/4/sdd-report/"
    assert api.last_request.stream is True


def test_get_sdd_and_run_report(hook, api):
    api.get(f"{BASE}/api/runs/4/sdd-report/", text="a,b\n1,2\n")
    api.get(f"{BASE}/api/runs/4/run-report/", text="table,rows\nt,3\n")
    assert hook.get_sdd_report(4) == "a,b\n1,2\n"
    assert hook.get_run_report(4) == "table,rows\nt,3\n"


def test_has_sdd_report(hook, api):
    api.get(f"{BASE}/api/runs/4/sdd-report/", text="a\n")
    api.get(f"{BASE}/api/runs/5/sdd-report/", status_code=404, json={"detail": "Not found."})
    assert hook.has_sdd_report(4) is True
    assert hook.has_sdd_report(5) is False


def test_has_sdd_report_other_errors_propagate(hook, api):
    api.get(f"{BASE}/api/runs/4/sdd-report/", status_code=500, json={"detail": "boom"})
    with pytest.raises(DataMasqueApiError, match="boom"):
        hook.has_sdd_report(4)


def test_report_not_found(hook, api):
    api.get(f"{BASE}/api/runs/4/run-report/", status_code=404, json={"detail": "Not found."})
    with pytest.raises(DataMasqueNotFoundError):
        hook.get_run_report(4)


def test_file_ruleset_uuid_constant_is_distinct():
    assert FILE_RULESET_UUID != RULESET_UUID
