"""DataMasqueUploadSeedOperator: unit tests (requests-mock) and emulator integration tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec
import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError
from airflow_provider_datamasque.operators.seeds import DataMasqueUploadSeedOperator

try:
    from .conftest_resources import BASE, api_calls, emu, make_dag, mock_api
except ImportError:
    from conftest_resources import (  # type: ignore[no-redef]  # noqa: F401
        BASE,
        api_calls,
        emu,
        make_dag,
        mock_api,
    )

SEEDS = f"{BASE}/api/seeds/"
CSV = b"first_name\nAroha\nMere\nTama\n"


def op(**kwargs: Any) -> DataMasqueUploadSeedOperator:
    params: dict[str, Any] = {"task_id": "seed", "name": "first_names"}
    params.update(kwargs)
    return DataMasqueUploadSeedOperator(**params)


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "first_names.csv"
    path.write_bytes(CSV)
    return path


def test_uploads_a_local_file(mock_api: Any, seed_file: Path) -> None:
    mock_api.post(SEEDS, status_code=201, json={"id": 7, "name": "first_names"})
    assert op(source=str(seed_file), description="Maori first names").execute({}) == 7
    request = api_calls(mock_api, "POST")[0]
    body = request.body if isinstance(request.body, bytes) else request.body.read()
    assert CSV in body
    assert b'filename="first_names.csv"' in body
    assert b"Maori first names" in body


def test_uploads_from_a_file_uri(mock_api: Any, seed_file: Path) -> None:
    mock_api.post(SEEDS, status_code=201, json={"id": 8})
    assert op(source=seed_file.as_uri()).execute({}) == 8


def test_uploads_from_an_object_storage_path(mock_api: Any, seed_file: Path) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    mock_api.post(SEEDS, status_code=201, json={"id": 9})
    assert op(source=ObjectStoragePath(seed_file.as_uri())).execute({}) == 9


@pytest.mark.parametrize("kind", ["path", "uri"])
def test_missing_source_is_named(mock_api: Any, tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "nope.csv"
    source = str(missing) if kind == "path" else missing.as_uri()
    with pytest.raises(DataMasqueConfigError, match=r"source '.*nope\.csv' does not exist"):
        op(source=source).execute({})
    assert mock_api.request_history == []


def test_directory_source_is_refused(mock_api: Any, tmp_path: Path) -> None:
    with pytest.raises(DataMasqueConfigError, match="not a file"):
        op(source=str(tmp_path)).execute({})
    assert mock_api.request_history == []


def test_empty_source(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="source is empty"):
        op(source="").execute({})


def test_source_and_name_are_templated(tmp_path: Path, seed_file: Path) -> None:
    with make_dag("seed_template"):
        task = op(name="names-{{ ds }}", source=str(tmp_path) + "/{{ params.file }}", description="{{ ds }}")
    task.render_template_fields({"ds": "2026-01-02", "params": {"file": "first_names.csv"}})
    assert task.name == "names-2026-01-02"
    assert task.source == str(seed_file)
    assert task.description == "2026-01-02"


# -- against the emulator ---------------------------------------------------------------------------


@pytest.mark.integration
def test_emulator_seed_content_arrives(emu: Any, seed_file: Path) -> None:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    seed_id = op(source=str(seed_file), description="names").execute({})
    seeds = DataMasqueHook().list_seeds()
    assert [s["id"] for s in seeds] == [seed_id]
    seed = seeds[0]
    assert seed["name"] == "first_names" and seed["description"] == "names"
    assert seed["filename"] == "first_names.csv"
    assert seed["size"] == len(CSV)
    assert seed["sha256"] == hashlib.sha256(CSV).hexdigest()


@pytest.mark.integration
def test_emulator_large_seed_arrives_whole(emu: Any, tmp_path: Path) -> None:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    big = tmp_path / "big.csv"
    content = b"value\n" + b"".join(b"row-%08d\n" % i for i in range(300_000))
    big.write_bytes(content)
    op(name="big", source=big).execute({})
    (seed,) = DataMasqueHook().list_seeds()
    assert seed["size"] == len(content)
    assert seed["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["uri", "object_storage_path"])
def test_emulator_seed_from_memory_filesystem(emu: Any, kind: str) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    memory = fsspec.filesystem("memory")
    memory.pipe("/seeds/last_names.csv", b"last_name\nSmith\n")
    uri = "memory://seeds/last_names.csv"
    source = uri if kind == "uri" else ObjectStoragePath(uri)
    try:
        seed_id = op(name="last_names", source=source).execute({})
    finally:
        memory.rm("/seeds/last_names.csv")
    seed = DataMasqueHook().get_seed(seed_id)
    assert seed["filename"] == "last_names.csv" and seed["size"] == len(b"last_name\nSmith\n")


def test_missing_memory_source(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="does not exist"):
        op(source="memory://seeds/absent.csv").execute({})
    assert mock_api.request_history == []


def test_unknown_scheme_is_named(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match=r"nosuchfs://x/seed\.csv"):
        op(source="nosuchfs://x/seed.csv").execute({})
    assert mock_api.request_history == []
