"""Rulesets: create / upsert / update / delete, unique per (name, mask_type), validated on save."""

from __future__ import annotations

import time
import uuid
from typing import Any

from airflow_provider_datamasque.emulator.state import ApiError, Store, iso, not_found
from airflow_provider_datamasque.emulator.yamlcheck import RulesetAnalysis, analyse_ruleset

MASK_TYPES = ("database", "file")
_WRITABLE = ("name", "config_yaml", "mask_type")


def _validate(data: Any, base: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    merged = {k: (base or {}).get(k) for k in _WRITABLE}
    merged.update({k: data[k] for k in _WRITABLE if k in data})
    if merged["mask_type"] is None:
        merged["mask_type"] = "database"
    errors: dict[str, list[str]] = {}
    for name in ("name", "config_yaml"):
        value = merged.get(name)
        if value is None:
            errors[name] = ["This field is required."]
        elif not isinstance(value, str):
            errors[name] = ["Not a valid string."]
        elif name == "name" and not value.strip():
            errors[name] = ["This field may not be blank."]
    if merged["mask_type"] not in MASK_TYPES:
        errors["mask_type"] = [f'"{merged["mask_type"]}" is not a valid choice.']
    if errors:
        raise ApiError(400, errors)
    return merged


def _find_by_name(store: Store, name: str, mask_type: str) -> dict[str, Any] | None:
    for record in store.rulesets.values():
        if record["name"] == name and record["mask_type"] == mask_type:
            return record
    return None


def _apply(record: dict[str, Any], fields: dict[str, Any]) -> None:
    analysis = analyse_ruleset(fields["config_yaml"])
    record.update(fields)
    record["_analysis"] = analysis
    record["is_valid"] = analysis.is_valid
    record["validation_errors"] = analysis.validation_errors
    record["unlicensed_feature_warnings"] = [] if analysis.is_valid == "valid" else None
    record["modified"] = iso(time.time())


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """API shape: internal ``_`` keys stripped, ``git_*`` fields null (not git-synced)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def analysis_of(record: dict[str, Any]) -> RulesetAnalysis:
    """The parsed structure saved with the ruleset."""
    analysis: RulesetAnalysis = record["_analysis"]
    return analysis


def create_ruleset(store: Store, data: Any, upsert: bool = False) -> tuple[int, dict[str, Any]]:
    """POST /api/rulesets/[?upsert=true]: 201 on create, 200 when an upsert updated one."""
    fields = _validate(data, None)
    with store.lock:
        existing = _find_by_name(store, fields["name"], fields["mask_type"])
        if existing is not None:
            if not upsert:
                raise ApiError(400, {"name": ["A ruleset with this name and mask type already exists."]})
            _apply(existing, fields)
            return 200, public_view(existing)
        now = iso(time.time())
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "created": now,
            "git_branch": None,
            "git_commit_sha": None,
            "git_repo_url": None,
            "git_synced_at": None,
        }
        _apply(record, fields)
        store.rulesets[record["id"]] = record
    return 201, public_view(record)


def get_ruleset(store: Store, ruleset_id: str) -> dict[str, Any]:
    """Internal record or 404."""
    record = store.rulesets.get(ruleset_id)
    if record is None:
        raise not_found()
    return record


def update_ruleset(store: Store, ruleset_id: str, data: Any, partial: bool) -> dict[str, Any]:
    """PUT / PATCH /api/rulesets/{id}/."""
    with store.lock:
        record = get_ruleset(store, ruleset_id)
        fields = _validate(data, record if partial else {"mask_type": record["mask_type"]})
        clash = _find_by_name(store, fields["name"], fields["mask_type"])
        if clash is not None and clash is not record:
            raise ApiError(400, {"name": ["A ruleset with this name and mask type already exists."]})
        _apply(record, fields)
        return public_view(record)


def delete_ruleset(store: Store, ruleset_id: str) -> None:
    """DELETE /api/rulesets/{id}/."""
    with store.lock:
        get_ruleset(store, ruleset_id)
        del store.rulesets[ruleset_id]


def list_rulesets(store: Store) -> list[dict[str, Any]]:
    """Bare list, oldest first, including ``config_yaml``."""
    with store.lock:
        return [public_view(r) for r in store.rulesets.values()]
