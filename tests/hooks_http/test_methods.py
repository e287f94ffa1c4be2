"""Every public DataMasqueHook method against the emulator, over real HTTP.

Each test names the methods it exercises with ``@pytest.mark.covers``; see ``_coverage``.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueAuthError,
    DataMasqueConfigError,
    DataMasqueNotFoundError,
)

from ._data import MASK_YAML, PG, SDD_YAML, seeded, wait_terminal


def zip_bytes(name: str = "a.txt", data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


# -- users, auth, system ---------------------------------------------------------------------------


@pytest.mark.covers("login", "get_current_user", "list_users")
def test_login_and_users(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    token = hook.login()
    assert len(token) == 40 and token != emu.api_token
    me = hook.get_current_user()
    assert me["username"] == emu.username
    assert [u["username"] for u in hook.list_users()] == [emu.username]
    assert emu.count_requests("POST", r"/api/auth/token/login/") == 1  # the token was kept


@pytest.mark.covers("test_connection")
def test_test_connection(make_hook, emu: DataMasqueEmulator) -> None:
    ok, message = make_hook().test_connection()
    assert ok is True
    assert f"Connected to DataMasque at {emu.url} as {emu.username}" == message
    ok, message = make_hook(conn={"password": "wrong-password-123"}).test_connection()
    assert ok is False
    assert "login failed" in message.lower() and "wrong-password-123" not in message
    assert "Unable to log in with provided credentials. Check the Login" in message  # one full stop


@pytest.mark.covers("test_connection", "get_current_user")
def test_api_token_connection(make_hook, emu: DataMasqueEmulator) -> None:
    hook = make_hook(conn={"login": None, "password": None}, api_token=emu.api_token)
    assert hook.test_connection()[0] is True
    assert hook.get_current_user()["username"] == emu.username
    assert emu.count_requests("POST", r"/api/auth/token/login/") == 0


@pytest.mark.covers("health_check", "app_check")
def test_health_and_app_check(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    assert hook.health_check()["worker_running"] is True
    assert hook.app_check()["installed"] is True
    assert emu.count_requests("POST", r"/api/auth/token/login/") == 0  # both are unauthenticated


@pytest.mark.covers("admin_install")
def test_admin_install_on_installed_instance(hook: DataMasqueHook) -> None:
    with pytest.raises(DataMasqueAuthError, match="already been installed") as info:
        hook.admin_install(email="a@example.com", username="root", password="Install-Passw0rd-9")
    assert "Install-Passw0rd-9" not in str(info.value)


@pytest.mark.covers("upload_licence")
def test_upload_licence(hook: DataMasqueHook) -> None:
    result = hook.upload_licence(b"LICENCE-DATA", filename="dm.lic")
    assert result is not None
    assert result["filename"] == "dm.lic" and result["size"] == len(b"LICENCE-DATA")


@pytest.mark.covers("list_oracle_wallets", "create_oracle_wallet", "delete_oracle_wallet")
def test_oracle_wallets(hook: DataMasqueHook) -> None:
    wallet = hook.create_oracle_wallet("prod-wallet", zip_bytes("cwallet.sso"), filename="w.zip")
    assert wallet["name"] == "prod-wallet" and wallet["filename"] == "w.zip"
    assert [w["id"] for w in hook.list_oracle_wallets()] == [wallet["id"]]
    hook.delete_oracle_wallet(wallet["id"])
    assert hook.list_oracle_wallets() == []
    hook.delete_oracle_wallet(wallet["id"])  # already gone: fine by default
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_oracle_wallet(wallet["id"], missing_ok=False)


@pytest.mark.covers("run_url", "close", "get_current_user")
def test_run_url_and_close(make_hook, emu: DataMasqueEmulator) -> None:
    hook = make_hook()
    assert hook.run_url(7) == f"{emu.url}/run-logs/7/"
    assert (
        make_hook(ui_url="https://dm-ui.example.com/").run_url(8) == "https://dm-ui.example.com/run-logs/8/"
    )
    hook.get_current_user()
    before = emu.connections_accepted
    hook.close()
    hook.get_current_user()  # a closed hook opens a new session
    assert emu.connections_accepted == before + 1


# -- seeds -------------------------------------------------------------------------------------------


@pytest.mark.covers("upload_seed", "list_seeds", "get_seed")
def test_seeds(hook: DataMasqueHook) -> None:
    seed = hook.upload_seed("first_names", io.BytesIO(b"name\nAda\nGrace\n"), description="first names")
    assert seed["name"] == "first_names" and seed["size"] == len(b"name\nAda\nGrace\n")
    assert seed["description"] == "first names"
    assert [s["id"] for s in hook.list_seeds()] == [seed["id"]]
    assert hook.get_seed(seed["id"])["name"] == "first_names"
    with pytest.raises(DataMasqueApiError, match="already exists"):
        hook.upload_seed("first_names", b"name\n")


# -- rulesets ----------------------------------------------------------------------------------------


@pytest.mark.covers(
    "create_ruleset",
    "get_ruleset",
    "list_rulesets",
    "find_ruleset",
    "resolve_ruleset_id",
    "update_ruleset",
    "upsert_ruleset",
    "delete_ruleset",
)
def test_rulesets(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    created = hook.create_ruleset("customers", MASK_YAML)
    assert created["is_valid"] == "valid"
    assert hook.get_ruleset(created["id"])["config_yaml"] == MASK_YAML
    assert [r["id"] for r in hook.list_rulesets()] == [created["id"]]
    assert hook.find_ruleset("customers", mask_type="database")["id"] == created["id"]
    assert hook.find_ruleset("customers", mask_type="file") is None
    assert hook.resolve_ruleset_id("customers") == created["id"]
    with pytest.raises(DataMasqueNotFoundError, match="customers"):
        hook.resolve_ruleset_id("customer")  # close match suggested

    updated = hook.update_ruleset(created["id"], name="customers", config_yaml=SDD_YAML)
    assert updated["config_yaml"] == SDD_YAML
    upserted = hook.upsert_ruleset("customers", MASK_YAML)
    assert upserted["id"] == created["id"] and upserted["config_yaml"] == MASK_YAML
    fresh = hook.upsert_ruleset("orders", MASK_YAML)
    assert fresh["id"] != created["id"]

    hook.delete_ruleset(created["id"])
    hook.delete_ruleset(created["id"])  # a second delete is harmless
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_ruleset(created["id"], missing_ok=False)
    assert [r["name"] for r in hook.list_rulesets()] == ["orders"]
    assert emu.count_requests("GET", r"/api/v2/rulesets/") >= 4  # the v2 list is used where present


# -- DataMasque connections and filesets -------------------------------------------------------------


@pytest.mark.covers(
    "create_datamasque_connection",
    "get_datamasque_connection",
    "list_datamasque_connections",
    "find_datamasque_connection",
    "resolve_connection_id",
    "update_datamasque_connection",
    "test_datamasque_connection",
    "delete_datamasque_connection",
)
def test_datamasque_connections(hook: DataMasqueHook) -> None:
    conn = hook.create_datamasque_connection(PG)
    assert conn["name"] == "pg" and "dbpassword" not in conn
    assert hook.get_datamasque_connection(conn["id"])["host"] == "db.example.com"
    assert [c["id"] for c in hook.list_datamasque_connections()] == [conn["id"]]
    assert hook.find_datamasque_connection("pg")["id"] == conn["id"]
    assert hook.find_datamasque_connection("nope") is None
    assert hook.resolve_connection_id("pg") == conn["id"]
    assert hook.resolve_connection_id(conn["id"]) == conn["id"]

    patched = hook.update_datamasque_connection(conn["id"], {"host": "db2.example.com"}, partial=True)
    assert patched["host"] == "db2.example.com"
    replaced = hook.update_datamasque_connection(conn["id"], PG | {"port": 6543})
    assert replaced["port"] == 6543 and replaced["host"] == "db.example.com"

    assert hook.test_datamasque_connection(conn["id"]) == {}
    assert hook.test_datamasque_connection(config=PG | {"name": "unsaved"}) == {}
    with pytest.raises(DataMasqueApiError, match=r"DNS lookup for db\.invalid failed"):
        hook.test_datamasque_connection(config=PG | {"host": "db.invalid"})
    with pytest.raises(DataMasqueApiError) as info:
        hook.create_datamasque_connection(PG | {"name": "pg2", "port": "not-a-port"})
    assert "port" in str(info.value) and PG["dbpassword"] not in str(info.value)

    hook.delete_datamasque_connection(conn["id"])
    assert hook.list_datamasque_connections() == []
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_datamasque_connection(conn["id"], missing_ok=False)


@pytest.mark.covers(
    "create_connection_fileset",
    "list_connection_filesets",
    "update_connection_fileset",
    "delete_connection_fileset",
)
def test_connection_filesets(hook: DataMasqueHook) -> None:
    first = zip_bytes("ca.pem", b"CERT-1")
    created = hook.create_connection_fileset("certs", "postgres", io.BytesIO(first))
    assert created["name"] == "certs" and created["size"] == len(first)
    assert [f["id"] for f in hook.list_connection_filesets()] == [created["id"]]
    second = zip_bytes("ca.pem", b"CERT-2-LONGER")
    updated = hook.update_connection_fileset(created["id"], "certs-v2", "postgres", second, filename="v2.zip")
    assert updated["id"] == created["id"]
    assert updated["name"] == "certs-v2" and updated["filename"] == "v2.zip"
    hook.delete_connection_fileset(created["id"])
    assert hook.list_connection_filesets() == []
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_connection_fileset(created["id"], missing_ok=False)


# -- runs --------------------------------------------------------------------------------------------


@pytest.mark.covers("start_run", "get_run", "get_run_status", "list_runs", "find_runs", "get_run_log")
def test_run_lifecycle(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    conn_id, _ = seeded(emu)
    run = hook.start_run(connection="pg", ruleset="rs", name="nightly [emulator:log_lines=3]")
    assert run["id"] == 1 and run["status"] in ("queued", "validating", "running")
    assert hook.get_run(run["id"])["name"] == "nightly [emulator:log_lines=3]"
    assert wait_terminal(hook, run["id"]) == "finished"
    assert hook.get_run_status(run["id"]) == "finished"
    assert [r["id"] for r in hook.list_runs(run_status="finished")] == [run["id"]]
    assert list(hook.list_runs(run_status="failed")) == []
    assert [r["id"] for r in hook.find_runs("nightly [emulator:log_lines=3]", source_connection=conn_id)] == [
        1
    ]
    assert hook.find_runs("nightly [emulator:log_lines=3]", source_connection="other-conn") == []
    messages = [entry["message"] for entry in hook.get_run_log(run["id"])]
    assert sum(m.startswith("Progress: batch") for m in messages) == 3
    assert messages[0] == "Run 1 queued on connection 'pg'."
    assert messages[-1] == "Run finished with status finished"
    with pytest.raises(DataMasqueConfigError, match="Unknown run option"):
        hook.start_run(connection="pg", ruleset="rs", options={"dryrun": True})
    assert emu.runs_created == 1


@pytest.mark.covers("get_run_log_since", "start_run")
def test_run_log_since_reads_only_new_bytes(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    seeded(emu)
    emu.run_seconds = 1.0
    run_id = hook.start_run(connection="pg", ruleset="rs", name="tail [emulator:log_lines=8]")["id"]
    seen: list[str] = []
    cursor = None
    while True:
        status = emu.get_run(run_id)["status"]  # read before the log, so the last read is complete
        entries, cursor = hook.get_run_log_since(run_id, cursor, final=status == "finished")
        seen += [entry["message"] for entry in entries]
        if status == "finished":
            break
    # Every line exactly once, in order: what one whole read of the finished log gives.
    whole = [entry["message"] for entry in hook.get_run_log(run_id)]
    assert seen == whole
    assert sum(m.startswith("Progress: batch") for m in seen) == 8
    ranged = [e for e in emu.journal if e.path == f"/api/runs/{run_id}/log/" and e.status == 206]
    assert ranged, "later reads ask for the new tail only"


@pytest.mark.covers("cancel_run", "start_run")
def test_cancel_run(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    seeded(emu)
    run_id = hook.start_run(connection="pg", ruleset="rs", name="slow [emulator:long]")["id"]
    cancelling = hook.cancel_run(run_id)
    assert cancelling is not None and cancelling["status"] == "cancelling"
    assert wait_terminal(hook, run_id) == "cancelled"
    with pytest.raises(DataMasqueApiError, match="already cancelled"):
        hook.cancel_run(run_id)


@pytest.mark.covers("get_run_report", "get_sdd_report", "has_sdd_report", "open_sdd_report", "start_run")
def test_reports(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    emu.create_connection(**(PG | {"name": "pg"}))
    emu.create_connection(**(PG | {"name": "pg-b"}))
    emu.create_ruleset("discover", SDD_YAML)
    emu.create_ruleset("plain", MASK_YAML)
    sdd = hook.start_run(connection="pg", ruleset="discover", name="sdd [emulator:report_bytes=200000]")["id"]
    plain = hook.start_run(connection="pg-b", ruleset="plain", name="plain")["id"]
    assert hook.has_sdd_report(sdd) is False  # not finished yet: no report
    wait_terminal(hook, sdd)
    wait_terminal(hook, plain)
    assert hook.has_sdd_report(sdd) is True
    assert hook.has_sdd_report(plain) is False
    with hook.open_sdd_report(sdd) as response:
        streamed = b"".join(response.iter_content(64 * 1024))
    assert streamed.startswith(b"table_schema,table_name,column_name")
    assert abs(len(streamed) - 200_000) < 1_000
    assert hook.get_sdd_report(sdd).encode() == streamed
    report = hook.get_run_report(plain)
    assert report.splitlines()[0] and "customers" in report
    with pytest.raises(DataMasqueNotFoundError):
        hook.get_sdd_report(plain)
