"""DataMasqueUploadSeedOperator: unit tests (requests-mock) and emulator integration tests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import fsspec
import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError
from airflow_provider_datamasque.operators.seeds import DataMasqueUploadSeedOperator

from .conftest_resources import BASE, api_calls, make_dag

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


def _capture(bodies: list[bytes], answer: dict[str, Any]) -> Any:
    """A requests-mock callback that reads the streamed body while the request is live."""

    def callback(request: Any, context: Any) -> dict[str, Any]:
        body = request.body
        bodies.append(body if isinstance(body, bytes) else b"".join(body))
        return answer

    return callback


def test_uploads_a_local_file(mock_api: Any, seed_file: Path) -> None:
    bodies: list[bytes] = []
    mock_api.post(SEEDS, status_code=201, json=_capture(bodies, {"id": 7, "name": "first_names"}))
    assert op(source=str(seed_file), description="Maori first names").execute({}) == 7
    request = api_calls(mock_api, "POST")[0]
    (body,) = bodies
    # Streamed with a known length, not built in memory by requests' files=.
    assert int(request.headers["Content-Length"]) == len(body)
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
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


# -- streaming: retries, chunked bodies, boundary-like content ----------------------------------------

#: Lines that look like multipart delimiters; the parser must not cut the seed at any of them.
TRICKY = (
    b"value\r\n--\r\n--boundary\r\n-- \n----------------------------1234\r\n"
    b'Content-Disposition: form-data; name="seed_file"\r\n\r\n--\r\n--\r\n\x00\xff--'
)


class _NonSeekable(io.RawIOBase):
    """A pipe-like source: read() works, seek/tell do not, size unknown."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 4096))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _retrying_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_DATAMASQUE_DEFAULT",
        json.dumps(
            {
                "conn_type": "datamasque",
                "host": BASE,
                "extra": {"api_token": "t" * 40, "max_retries": 2, "retry_backoff": 0.01},
            }
        ),
    )


def test_a_throttled_upload_is_resent_whole(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch, seed_file: Path
) -> None:
    _retrying_connection(monkeypatch)
    bodies: list[bytes] = []
    requests_mock.post(
        SEEDS,
        [
            {
                "status_code": 429,
                "json": _capture(bodies, {"detail": "slow down"}),
                "headers": {"Retry-After": "0"},
            },
            {"status_code": 201, "json": _capture(bodies, {"id": 3})},
        ],
    )
    assert op(source=str(seed_file)).execute({}) == 3
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[1].count(CSV) == 1


def test_a_partly_sent_non_seekable_source_is_not_resent(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
    from airflow_provider_datamasque.hooks.errors import DataMasqueError

    _retrying_connection(monkeypatch)
    bodies: list[bytes] = []
    requests_mock.post(
        SEEDS,
        status_code=429,
        json=_capture(bodies, {"detail": "slow down"}),
        headers={"Retry-After": "0"},
    )
    with pytest.raises(DataMasqueError, match="'seed_file' cannot be sent again: its source is not seekable"):
        DataMasqueHook().upload_seed("piped", _NonSeekable(CSV))  # type: ignore[arg-type]
    assert len(bodies) == 1 and CSV in bodies[0]
    # Size unknown: sent chunked rather than with a guessed length.
    headers = requests_mock.request_history[0].headers
    assert headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers


def test_a_source_that_shrinks_mid_upload_is_refused(tmp_path: Path) -> None:
    from airflow_provider_datamasque.hooks.errors import DataMasqueError
    from airflow_provider_datamasque.hooks.multipart import MultipartStream

    path = tmp_path / "s.csv"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb", buffering=0) as handle:
        body = MultipartStream({}, "seed_file", handle, filename="s.csv", chunk_size=100)  # type: ignore[arg-type]
        chunks = iter(body)
        next(chunks), next(chunks)
        path.write_bytes(b"x" * 300)  # truncated in place while the upload runs
        with pytest.raises(DataMasqueError, match="ended 700 bytes early"):
            list(chunks)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("plain.csv", b'filename="plain.csv"'), ('we"ird\r\n.csv', b'filename="we%22ird%0D%0A.csv"')],
)
def test_filename_is_escaped_in_the_part_header(filename: str, expected: bytes) -> None:
    from airflow_provider_datamasque.hooks.multipart import MultipartStream

    body = b"".join(MultipartStream({"name": "n"}, "seed_file", io.BytesIO(b"a"), filename=filename))
    assert expected in body


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["path", "file_uri", "memory_object_storage_path"])
def test_emulator_streamed_seed_is_byte_identical(emu: Any, tmp_path: Path, kind: str) -> None:
    """Several MB, with delimiter-like lines, from each kind of source; the emulator hashes what arrived."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    content = TRICKY + b"".join(b"--row-%07d,--\r\n" % i for i in range(300_000)) + TRICKY
    assert len(content) > 4_000_000
    memory = fsspec.filesystem("memory")
    if kind == "memory_object_storage_path":
        memory.pipe("/seeds/tricky.csv", content)
        source: Any = ObjectStoragePath("memory://seeds/tricky.csv")
    else:
        local = tmp_path / "tricky.csv"
        local.write_bytes(content)
        source = str(local) if kind == "path" else local.as_uri()
    try:
        seed_id = op(name=f"tricky-{kind}", source=source).execute({})
    finally:
        if kind == "memory_object_storage_path":
            memory.rm("/seeds/tricky.csv")
    seed = DataMasqueHook().get_seed(seed_id)
    assert seed["filename"] == "tricky.csv"
    assert seed["size"] == len(content)
    assert seed["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.integration
def test_emulator_chunked_upload_of_a_non_seekable_source(emu: Any) -> None:
    """Size unknown: the body goes out with Transfer-Encoding: chunked, and still arrives whole."""
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    content = TRICKY * 50_000
    hook = DataMasqueHook()
    seed = hook.upload_seed("piped", _NonSeekable(content), filename="piped.csv")  # type: ignore[arg-type]
    assert seed["size"] == len(content)
    assert seed["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.integration
def test_emulator_throttled_upload_is_resent_and_arrives_once(emu: Any, seed_file: Path) -> None:
    from airflow_provider_datamasque.emulator.faults import FaultConfig
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    # Seed 1 draws a 429 for the first POST and lets the retry through.
    emu.set_faults(FaultConfig(rate_limit_rate=0.5, retry_after=0, path_pattern="POST /api/seeds/", seed=1))
    seed_id = op(source=str(seed_file)).execute({})
    emu.clear_faults()
    assert emu.count_requests("POST", "^/api/seeds/$") == 2
    (seed,) = DataMasqueHook().list_seeds()
    assert seed["id"] == seed_id and seed["sha256"] == hashlib.sha256(CSV).hexdigest()
