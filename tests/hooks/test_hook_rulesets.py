"""Rulesets: list (v2, v1 fallback), get, create, update, upsert, delete, find and resolve."""

from __future__ import annotations

import pytest

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueNotFoundError,
)

from ._support import BASE, FILE_RULESET_UUID, RULESET_UUID, calls

V1 = f"{BASE}/api/rulesets/"
V2 = f"{BASE}/api/v2/rulesets/"
YAML = "version: '1.0'\ntasks:\n  - type: truncate_table\n    table: t\n"

RULESETS = [
    {"id": RULESET_UUID, "name": "customers", "mask_type": "database"},
    {"id": FILE_RULESET_UUID, "name": "customers", "mask_type": "file"},
    {"id": "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee", "name": "orders"},
]


def test_list_rulesets_uses_v2(hook, api):
    api.get(V2, json=RULESETS)
    assert hook.list_rulesets() == RULESETS
    assert calls(api, "GET", "/api/rulesets/") == []


def test_list_rulesets_falls_back_to_v1_on_404(hook, api):
    api.get(V2, status_code=404, json={"detail": "Not found."})
    api.get(V1, json={"next": None, "results": RULESETS[:1]})
    assert hook.list_rulesets() == RULESETS[:1]
    assert len(calls(api, "GET", "/api/v2/rulesets/")) == 1
    assert len(calls(api, "GET", "/api/rulesets/")) == 1


def test_list_rulesets_other_errors_do_not_fall_back(hook, api):
    api.get(V2, status_code=500, json={"detail": "boom"})
    api.get(V1, json=[])
    with pytest.raises(DataMasqueApiError, match="boom"):
        hook.list_rulesets()
    assert calls(api, "GET", "/api/rulesets/") == []


def test_get_ruleset(hook, api):
    api.get(f"{V1}{RULESET_UUID}/", json={"id": RULESET_UUID, "config_yaml": YAML})
    assert hook.get_ruleset(RULESET_UUID) == {"id": RULESET_UUID, "config_yaml": YAML}


def test_create_ruleset(hook, api):
    api.post(V1, status_code=201, json={"id": RULESET_UUID, "name": "r"})
    assert hook.create_ruleset("r", YAML, mask_type="file") == {"id": RULESET_UUID, "name": "r"}
    assert api.last_request.json() == {"name": "r", "config_yaml": YAML, "mask_type": "file"}
    assert api.last_request.qs == {}


def test_create_ruleset_default_mask_type(hook, api):
    api.post(V1, status_code=201, json={"id": RULESET_UUID})
    hook.create_ruleset("r", YAML)
    assert api.last_request.json()["mask_type"] == "database"


def test_update_ruleset_put(hook, api):
    url = f"{V1}{RULESET_UUID}/"
    api.put(url, json={"id": RULESET_UUID, "name": "r2"})
    assert hook.update_ruleset(RULESET_UUID, name="r2", config_yaml=YAML) == {
        "id": RULESET_UUID,
        "name": "r2",
    }
    (put,) = calls(api, "PUT", f"/api/rulesets/{RULESET_UUID}/")
    assert put.json() == {"name": "r2", "config_yaml": YAML, "mask_type": "database"}
    assert calls(api, "GET", f"/api/rulesets/{RULESET_UUID}/") == []


def test_update_ruleset_204_rereads(hook, api):
    url = f"{V1}{RULESET_UUID}/"
    api.put(url, status_code=204)
    api.get(url, json={"id": RULESET_UUID, "name": "r2", "config_yaml": YAML})
    assert hook.update_ruleset(RULESET_UUID, name="r2", config_yaml=YAML)["config_yaml"] == YAML
    assert len(calls(api, "GET", f"/api/rulesets/{RULESET_UUID}/")) == 1


def test_upsert_ruleset(hook, api):
    api.post(V1, status_code=200, json={"id": RULESET_UUID, "name": "r", "is_valid": "valid"})
    assert hook.upsert_ruleset("r", YAML)["is_valid"] == "valid"
    assert api.last_request.qs == {"upsert": ["true"]}
    assert api.last_request.json() == {"name": "r", "config_yaml": YAML, "mask_type": "database"}


def test_upsert_ruleset_is_retried(hook, api):
    api.post(V1, [{"status_code": 503, "text": ""}, {"status_code": 201, "json": {"id": RULESET_UUID}}])
    assert hook.upsert_ruleset("r", YAML) == {"id": RULESET_UUID}
    assert len(calls(api, "POST", "/api/rulesets/")) == 2


def test_create_ruleset_is_not_retried(hook, api):
    api.post(V1, status_code=503, text="")
    with pytest.raises(DataMasqueApiError):
        hook.create_ruleset("r", YAML)
    assert len(calls(api, "POST", "/api/rulesets/")) == 1


def test_delete_ruleset(hook, api):
    api.delete(f"{V1}{RULESET_UUID}/", status_code=204)
    assert hook.delete_ruleset(RULESET_UUID) is None
    assert api.last_request.method == "DELETE"


def test_delete_ruleset_404_tolerated(hook, api):
    api.delete(f"{V1}{RULESET_UUID}/", status_code=404, json={"detail": "Not found."})
    hook.delete_ruleset(RULESET_UUID)
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_ruleset(RULESET_UUID, missing_ok=False)


def test_delete_ruleset_other_error_raises(hook, api):
    api.delete(f"{V1}{RULESET_UUID}/", status_code=400, json={"detail": "In use."})
    with pytest.raises(DataMasqueApiError, match=r"In use\."):
        hook.delete_ruleset(RULESET_UUID)


def test_find_ruleset(hook, api):
    api.get(V2, json=RULESETS)
    assert hook.find_ruleset("customers")["id"] == RULESET_UUID
    assert hook.find_ruleset("customers", mask_type="file")["id"] == FILE_RULESET_UUID
    assert hook.find_ruleset("orders", mask_type="database")["name"] == "orders"  # default mask type
    assert hook.find_ruleset("orders", mask_type="file") is None
    assert hook.find_ruleset("missing") is None


def test_resolve_ruleset_uuid_passthrough(hook, requests_mock):
    assert hook.resolve_ruleset_id(RULESET_UUID) == RULESET_UUID
    assert hook.resolve_ruleset_id(f"  {RULESET_UUID} ") == RULESET_UUID
    assert requests_mock.request_history == []


def test_resolve_ruleset_by_name(hook, api):
    api.get(V2, json=RULESETS)
    assert hook.resolve_ruleset_id("orders") == "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_resolve_ruleset_ambiguous_database_vs_file(hook, api):
    api.get(V2, json=RULESETS)
    with pytest.raises(DataMasqueConfigError) as info:
        hook.resolve_ruleset_id("customers")
    text = str(info.value)
    assert "ambiguous" in text
    assert "mask_type" in text
    assert RULESET_UUID in text
    assert FILE_RULESET_UUID in text


@pytest.mark.parametrize(("mask_type", "expected"), [("database", RULESET_UUID), ("file", FILE_RULESET_UUID)])
def test_resolve_ruleset_mask_type_disambiguates(hook, api, mask_type, expected):
    api.get(V2, json=RULESETS)
    assert hook.resolve_ruleset_id("customers", mask_type=mask_type) == expected


def test_resolve_ruleset_unknown_lists_close_matches(hook, api):
    api.get(V2, json=RULESETS)
    with pytest.raises(DataMasqueNotFoundError) as info:
        hook.resolve_ruleset_id("custmers")
    assert "'customers'" in str(info.value)
    assert "custmers" in str(info.value)
