"""Endpoints for auth, users, system, connections, uploaded files and rulesets."""

from __future__ import annotations

from typing import Any

from airflow_provider_datamasque.emulator import connections, files, rulesets
from airflow_provider_datamasque.emulator.messages import Context, Response, empty, json_response
from airflow_provider_datamasque.emulator.routes import route
from airflow_provider_datamasque.emulator.state import ApiError, iso, not_found

# ---- auth, users, system ---------------------------------------------------------------------


@route("POST", "/api/auth/token/login/", auth=False)
def login(ctx: Context) -> Response:
    data = ctx.json()
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors = {k: ["This field is required."] for k in ("username", "password") if not data.get(k)}
    if errors:
        raise ApiError(400, errors)
    token = ctx.emu.store.login(str(data["username"]), str(data["password"]))
    if token is None:
        raise ApiError(400, {"non_field_errors": ["Unable to log in with provided credentials."]})
    return json_response(
        200,
        {
            "id": token.key[:8],
            "key": token.key,
            "client_ip": ctx.headers.get("X-Forwarded-For", "127.0.0.1"),
            "client_browser": "Other",
            "client_os": "Other",
            "client_device": "Other",
            "date_time_created": iso(token.created),
            "date_time_expires": iso(token.created + 12 * 3600),
        },
    )


@route("POST", "/api/auth/token/logout/")
def logout(ctx: Context) -> Response:
    ctx.emu.store.logout(_token_of(ctx) or "")
    return empty(204)


def _token_of(ctx: Context) -> str | None:
    scheme, _, key = (ctx.headers.get("Authorization") or "").partition(" ")
    return key.strip() if scheme.lower() == "token" and key.strip() else None


@route("GET", "/api/users/me/")
def users_me(ctx: Context) -> Response:
    return json_response(200, ctx.emu.store.user)


@route("GET", "/api/users/")
def users_list(ctx: Context) -> Response:
    return json_response(200, [ctx.emu.store.user])


@route("GET", "/api/users/{int}/")
def users_get(ctx: Context, user_id: str) -> Response:
    if int(user_id) != ctx.emu.store.user["id"]:
        raise not_found()
    return json_response(200, ctx.emu.store.user)


@route("POST", "/api/users/admin-install/", auth=False)
def admin_install(ctx: Context) -> Response:
    return json_response(401, {"detail": "DataMasque has already been installed."})


def _health() -> dict[str, Any]:
    return {
        "worker_running": True,
        "license_expired": False,
        "license_renewal_in_days": 365,
        "license_limit_breach": {},
    }


@route("GET", "/api/healthcheck/", auth=False)
def healthcheck(ctx: Context) -> Response:
    return json_response(200, _health())


@route("GET", "/api/health-check/", auth=False)
def health_check(ctx: Context) -> Response:
    return json_response(200, _health())


@route("GET", "/api/app/check/", auth=False)
def app_check(ctx: Context) -> Response:
    return json_response(
        200,
        {
            "is_aws_marketplace": False,
            "installed": True,
            "is_smtp_configured": False,
            "is_saml_sso_configured": False,
        },
    )


@route("POST", "/api/license-upload/")
def license_upload(ctx: Context) -> Response:
    return json_response(200, files.upload_license(ctx.form()[1]))


# ---- connections -----------------------------------------------------------------------------


@route("GET", "/api/connections/")
def connections_list(ctx: Context) -> Response:
    store = ctx.emu.store
    with store.lock:
        return json_response(200, [connections.public_view(c) for c in store.connections.values()])


@route("POST", "/api/connections/")
def connections_create(ctx: Context) -> Response:
    return json_response(201, connections.create_connection(ctx.emu.store, ctx.json()))


@route("POST", "/api/connections/test/")
def connections_test_unsaved(ctx: Context) -> Response:
    return json_response(200, connections.check_connection(connections.validate_connection(ctx.json())))


@route("GET", "/api/connections/{id}/")
def connections_get(ctx: Context, conn_id: str) -> Response:
    return json_response(200, connections.public_view(connections.get_connection(ctx.emu.store, conn_id)))


@route("PUT", "/api/connections/{id}/")
def connections_put(ctx: Context, conn_id: str) -> Response:
    return json_response(
        200, connections.update_connection(ctx.emu.store, conn_id, ctx.json(), partial=False)
    )


@route("PATCH", "/api/connections/{id}/")
def connections_patch(ctx: Context, conn_id: str) -> Response:
    return json_response(200, connections.update_connection(ctx.emu.store, conn_id, ctx.json(), partial=True))


@route("DELETE", "/api/connections/{id}/")
def connections_delete(ctx: Context, conn_id: str) -> Response:
    connections.delete_connection(ctx.emu.store, conn_id)
    return empty(204)


@route("POST", "/api/connections/{id}/test/")
def connections_test(ctx: Context, conn_id: str) -> Response:
    return json_response(
        200, connections.check_connection(connections.get_connection(ctx.emu.store, conn_id))
    )


# ---- filesets, wallets, seeds ----------------------------------------------------------------


def _int_table(ctx: Context, name: str) -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = getattr(ctx.emu.store, name)
    return table


def _list_table(ctx: Context, name: str) -> Response:
    with ctx.emu.store.lock:
        return json_response(200, list(_int_table(ctx, name).values()))


def _get_from(ctx: Context, name: str, object_id: str) -> Response:
    record = _int_table(ctx, name).get(int(object_id))
    if record is None:
        raise not_found()
    return json_response(200, record)


def _delete(ctx: Context, name: str, object_id: str) -> Response:
    with ctx.emu.store.lock:
        files.delete_from(_int_table(ctx, name), int(object_id))
    return empty(204)


@route("GET", "/api/connection-filesets/")
def filesets_list(ctx: Context) -> Response:
    return _list_table(ctx, "filesets")


@route("POST", "/api/connection-filesets/")
def filesets_create(ctx: Context) -> Response:
    return json_response(201, files.create_fileset(ctx.emu.store, *ctx.form()))


@route("GET", "/api/connection-filesets/{int}/")
def filesets_get(ctx: Context, object_id: str) -> Response:
    return _get_from(ctx, "filesets", object_id)


@route("PUT", "/api/connection-filesets/{int}/")
def filesets_put(ctx: Context, object_id: str) -> Response:
    return json_response(200, files.update_fileset(ctx.emu.store, int(object_id), *ctx.form()))


@route("DELETE", "/api/connection-filesets/{int}/")
def filesets_delete(ctx: Context, object_id: str) -> Response:
    return _delete(ctx, "filesets", object_id)


@route("GET", "/api/oracle-wallets/")
def wallets_list(ctx: Context) -> Response:
    return _list_table(ctx, "wallets")


@route("POST", "/api/oracle-wallets/")
def wallets_create(ctx: Context) -> Response:
    return json_response(201, files.create_wallet(ctx.emu.store, *ctx.form()))


@route("DELETE", "/api/oracle-wallets/{int}/")
def wallets_delete(ctx: Context, object_id: str) -> Response:
    return _delete(ctx, "wallets", object_id)


@route("GET", "/api/seeds/")
def seeds_list(ctx: Context) -> Response:
    return _list_table(ctx, "seeds")


@route("POST", "/api/seeds/")
def seeds_create(ctx: Context) -> Response:
    return json_response(201, files.create_seed(ctx.emu.store, *ctx.form()))


@route("GET", "/api/seeds/{int}/")
def seeds_get(ctx: Context, object_id: str) -> Response:
    return _get_from(ctx, "seeds", object_id)


@route("DELETE", "/api/seeds/{int}/")
def seeds_delete(ctx: Context, object_id: str) -> Response:
    return _delete(ctx, "seeds", object_id)


# ---- rulesets --------------------------------------------------------------------------------


@route("GET", "/api/v2/rulesets/")
def rulesets_list_v2(ctx: Context) -> Response:
    return json_response(200, rulesets.list_rulesets(ctx.emu.store))


@route("GET", "/api/rulesets/")
def rulesets_list(ctx: Context) -> Response:
    return json_response(200, rulesets.list_rulesets(ctx.emu.store))


@route("POST", "/api/rulesets/")
def rulesets_create(ctx: Context) -> Response:
    upsert = ctx.query.get("upsert", "").lower() in ("true", "1", "yes")
    status, body = rulesets.create_ruleset(ctx.emu.store, ctx.json(), upsert=upsert)
    return json_response(status, body)


@route("GET", "/api/rulesets/{id}/")
def rulesets_get(ctx: Context, ruleset_id: str) -> Response:
    return json_response(200, rulesets.public_view(rulesets.get_ruleset(ctx.emu.store, ruleset_id)))


@route("GET", "/api/v2/rulesets/{id}/")
def rulesets_get_v2(ctx: Context, ruleset_id: str) -> Response:
    return rulesets_get(ctx, ruleset_id)


@route("PUT", "/api/rulesets/{id}/")
def rulesets_put(ctx: Context, ruleset_id: str) -> Response:
    return json_response(200, rulesets.update_ruleset(ctx.emu.store, ruleset_id, ctx.json(), partial=False))


@route("PATCH", "/api/rulesets/{id}/")
def rulesets_patch(ctx: Context, ruleset_id: str) -> Response:
    return json_response(200, rulesets.update_ruleset(ctx.emu.store, ruleset_id, ctx.json(), partial=True))


@route("DELETE", "/api/rulesets/{id}/")
def rulesets_delete(ctx: Context, ruleset_id: str) -> Response:
    rulesets.delete_ruleset(ctx.emu.store, ruleset_id)
    return empty(204)
