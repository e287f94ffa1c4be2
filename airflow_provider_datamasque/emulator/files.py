"""Uploaded files: seeds, connection filesets, Oracle wallets and the licence upload.

Only metadata (name, size, a content hash) is kept, so large uploads do not pin memory.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from airflow_provider_datamasque.emulator.multipart import UploadedFile
from airflow_provider_datamasque.emulator.state import ApiError, Store, iso, not_found

REQUIRED = "This field is required."
NO_FILE = "No file was submitted."


def _describe(upload: UploadedFile) -> dict[str, Any]:
    return {
        "filename": upload.filename,
        "size": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }


def create_seed(store: Store, fields: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
    """POST /api/seeds/ (multipart ``seed_file`` + ``name`` + ``description``)."""
    upload = files.get("seed_file")
    errors: dict[str, list[str]] = {}
    if upload is None:
        errors["seed_file"] = [NO_FILE]
    name = fields.get("name") or (upload.filename if upload else "")
    if not name:
        errors["name"] = [REQUIRED]
    if errors or upload is None:
        raise ApiError(400, errors)
    with store.lock:
        if any(s["name"] == name for s in store.seeds.values()):
            raise ApiError(400, {"name": ["seed with this name already exists."]})
        seed_id = store.next_id("seed")
        info = _describe(upload)
        seed = {
            "id": seed_id,
            "name": name,
            "description": fields.get("description", ""),
            "seed_file": f"/files/seeds/{info['filename']}",
            "created_date": iso(time.time()),
            **info,
        }
        store.seeds[seed_id] = seed
        return seed


def create_fileset(store: Store, fields: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
    """POST /api/connection-filesets/ (multipart ``zip_archive`` or JSON with a location string)."""
    with store.lock:
        record = _fileset_fields(fields, files)
        record["id"] = store.next_id("fileset")
        record["created_date"] = iso(time.time())
        store.filesets[record["id"]] = record
        return record


def update_fileset(
    store: Store, fileset_id: int, fields: dict[str, Any], files: dict[str, UploadedFile]
) -> dict[str, Any]:
    """PUT /api/connection-filesets/{id}/."""
    with store.lock:
        old = store.filesets.get(fileset_id)
        if old is None:
            raise not_found()
        record = _fileset_fields(fields, files)
        record.update(id=fileset_id, created_date=old["created_date"])
        store.filesets[fileset_id] = record
        return record


def _fileset_fields(fields: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
    errors = {k: [REQUIRED] for k in ("name", "database_type") if not fields.get(k)}
    archive = files.get("zip_archive")
    if archive is None and not fields.get("zip_archive"):
        errors["zip_archive"] = [NO_FILE]
    if errors:
        raise ApiError(400, errors)
    record: dict[str, Any] = {"name": fields["name"], "database_type": fields["database_type"]}
    if archive is not None:
        record.update(_describe(archive), zip_archive=f"/files/connection_filesets/{archive.filename}")
    else:
        record["zip_archive"] = str(fields["zip_archive"])
    return record


def create_wallet(store: Store, fields: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
    """POST /api/oracle-wallets/ (multipart; the first file part is the wallet)."""
    if not files:
        raise ApiError(400, {"wallet_file": [NO_FILE]})
    field_name, upload = next(iter(files.items()))
    with store.lock:
        wallet_id = store.next_id("wallet")
        wallet = {
            "id": wallet_id,
            "name": fields.get("name") or upload.filename,
            "field": field_name,
            "created_date": iso(time.time()),
            **_describe(upload),
        }
        store.wallets[wallet_id] = wallet
        return wallet


def delete_from(table: dict[int, dict[str, Any]], object_id: int) -> None:
    """Generic DELETE for the int-keyed tables."""
    if table.pop(object_id, None) is None:
        raise not_found()


def upload_license(files: dict[str, UploadedFile]) -> dict[str, Any]:
    """POST /api/license-upload/ (multipart ``license_file``)."""
    upload = files.get("license_file")
    if upload is None:
        raise ApiError(400, {"license_file": [NO_FILE]})
    return {"detail": "Licence uploaded.", **_describe(upload)}
