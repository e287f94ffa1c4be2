"""DataMasqueSddReportOperator: unit tests (requests-mock) and emulator integration tests."""

from __future__ import annotations

import contextlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
import urllib3
from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_datamasque.emulator.samples import MASK_RULESET_YAML as MASK_YAML
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueConfigError,
    DataMasqueNotFoundError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator, local_path_of

from .conftest_resources import (
    BASE,
    finished_run,
    make_dag,
)

REPORT_URL = f"{BASE}/api/runs/42/sdd-report/"
CSV = (
    "table_schema,table_name,column_name,data_type,sensitive_data_category,matched_keyword,is_masked\n"
    "public,customers,email,varchar(255),PII,email,true\n"
)
HEADER = CSV.splitlines()[0]


def op(**kwargs: Any) -> DataMasqueSddReportOperator:
    params: dict[str, Any] = {"task_id": "report", "run_id": 42}
    params.update(kwargs)
    return DataMasqueSddReportOperator(**params)


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    yield fs
    with contextlib.suppress(FileNotFoundError):
        fs.rm("/reports", recursive=True)


class BrokenRaw:
    """urllib3's raw body that dies after its first chunk, as a dropped connection does."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, amt: int, decode_content: bool = True) -> bytes:
        self.reads += 1
        if self.reads == 1:
            return b"table_schema,table_name\n"
        raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")


class BrokenResponse:
    """A streamed response that dies after its first chunk."""

    encoding = "utf-8"
    headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.raw = BrokenRaw()


def broken_hook(task: DataMasqueSddReportOperator, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def open_sdd_report(run_id: Any) -> Iterator[Any]:
        yield BrokenResponse()

    monkeypatch.setattr(task.hook, "open_sdd_report", open_sdd_report)


# -- argument checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"if_missing": "ignore"}, "if_missing"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_xcom_bytes": -1}, "max"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DataMasqueConfigError, match=fragment):
        op(**kwargs)


def test_local_path_of() -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    assert local_path_of("/tmp/r.csv") == "/tmp/r.csv"
    assert local_path_of("file:///tmp/a%20b.csv") == "/tmp/a b.csv"
    assert local_path_of(Path("/tmp/r.csv")) == "/tmp/r.csv"
    assert local_path_of(ObjectStoragePath("file:///tmp/r.csv")) == "/tmp/r.csv"
    assert local_path_of("s3://bucket/r.csv") is None
    assert local_path_of("memory://r.csv") is None
    assert local_path_of(ObjectStoragePath("s3://bucket/r.csv")) is None


# -- XCom mode --------------------------------------------------------------------------------------


def test_returns_csv_text(mock_api: Any, logs: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV, headers={"Content-Type": "text/csv"})
    assert op().execute({}) == CSV
    assert f"{len(CSV)} bytes" in logs()


def test_exactly_at_the_limit_is_fine(mock_api: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    assert op(max_xcom_bytes=len(CSV)).execute({}) == CSV


def test_over_the_limit_asks_for_destination(mock_api: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    with pytest.raises(DataMasqueConfigError, match=r"larger than max_xcom_bytes.*Set destination"):
        op(max_xcom_bytes=len(CSV) - 1, chunk_size=7).execute({})


def test_missing_report_fails_with_explanation(mock_api: Any) -> None:
    mock_api.get(REPORT_URL, status_code=404, json={"detail": "No sdd report found for this run."})
    with pytest.raises(DataMasqueNotFoundError) as excinfo:
        op().execute({})
    message = str(excinfo.value)
    assert "run 42 has no SDD report" in message and "run_data_discovery" in message
    assert "No sdd report found" in message


def test_missing_report_can_skip(mock_api: Any, tmp_path: Path) -> None:
    mock_api.get(REPORT_URL, status_code=404, json={"detail": "No sdd report found for this run."})
    with pytest.raises(AirflowSkipException, match="run_data_discovery"):
        op(if_missing="skip").execute({})
    with pytest.raises(AirflowSkipException, match="run_data_discovery"):
        op(if_missing="skip", destination=str(tmp_path / "r.csv")).execute({})
    assert list(tmp_path.iterdir()) == []


def test_empty_run_id(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="run_id"):
        op(run_id="").execute({})
    assert mock_api.request_history == []


# -- destination mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "uri", "pathlib"])
def test_writes_local_file(mock_api: Any, tmp_path: Path, form: str, logs: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    target = tmp_path / "nested" / "dir" / "report.csv"
    destination: Any = {"path": str(target), "uri": target.as_uri(), "pathlib": target}[form]
    result = op(destination=destination, chunk_size=10).execute({})
    assert target.read_text() == CSV
    assert result == (target.as_uri() if form == "uri" else str(target))
    assert os.listdir(target.parent) == ["report.csv"]
    assert f"{len(CSV)} bytes" in logs()


def test_local_write_replaces_an_existing_file(mock_api: Any, tmp_path: Path) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    target = tmp_path / "report.csv"
    target.write_text("old")
    op(destination=str(target)).execute({})
    assert target.read_text() == CSV


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_report_is_written_decoded(mock_api: Any, tmp_path: Path, encoding: str) -> None:
    import gzip
    import zlib

    packed = gzip.compress(CSV.encode()) if encoding == "gzip" else zlib.compress(CSV.encode())
    mock_api.get(REPORT_URL, content=packed, headers={"Content-Encoding": encoding})
    target = tmp_path / "report.csv"
    op(destination=str(target), chunk_size=7).execute({})
    assert target.read_text() == CSV


def test_uncompressed_report_is_copied_in_chunk_size_blocks(mock_api: Any, tmp_path: Path) -> None:
    body = b"x" * 100
    mock_api.get(REPORT_URL, content=body)
    task = op(destination=str(tmp_path / "r.csv"), chunk_size=30)
    with task.hook.open_sdd_report(42) as response:
        chunks = list(task._chunks("42", response, 30))
    assert [len(c) for c in chunks] == [30, 30, 30, 10]


def test_broken_download_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.csv"
    target.write_text("previous report")
    task = op(destination=str(target))
    broken_hook(task, monkeypatch)
    with pytest.raises(DataMasqueTransportError, match="run 42"):
        task.execute({})
    assert target.read_text() == "previous report"
    assert os.listdir(tmp_path) == ["report.csv"]


def test_unwritable_local_destination_is_named(mock_api: Any, tmp_path: Path) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    destination = str(blocker / "report.csv")
    with pytest.raises(DataMasqueConfigError, match=r"destination '.*not-a-dir/report\.csv' is not writable"):
        op(destination=destination).execute({})


def test_writes_to_memory_filesystem(mock_api: Any, memory_fs: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    result = op(destination="memory://reports/run-42.csv", chunk_size=16).execute({})
    assert result == "memory://reports/run-42.csv"
    assert memory_fs.cat("/reports/run-42.csv").decode() == CSV


def test_writes_to_an_object_storage_path(
    mock_api: Any, memory_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from airflow.providers.common.compat.sdk import ObjectStoragePath, io

    store = importlib.import_module(io.__name__ + ".store")
    monkeypatch.setattr(store, "_STORE_CACHE", dict(store._STORE_CACHE))
    getattr(io, "attach", store.attach)("memory", fs=memory_fs)  # Airflow 2.11: only in io.store
    mock_api.get(REPORT_URL, text=CSV)
    destination = ObjectStoragePath("memory://reports/osp.csv")
    result = op(destination=destination).execute({})
    assert result == str(destination)  # memory://reports/osp.csv (memory:///reports/osp.csv on 2.11)
    assert memory_fs.cat("/reports/osp.csv").decode() == CSV


def test_broken_download_removes_partial_object(memory_fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    task = op(destination="memory://reports/partial.csv")
    broken_hook(task, monkeypatch)
    with pytest.raises(DataMasqueTransportError):
        task.execute({})
    assert not memory_fs.exists("/reports/partial.csv")


def test_unknown_scheme_is_named(mock_api: Any) -> None:
    mock_api.get(REPORT_URL, text=CSV)
    with pytest.raises(DataMasqueConfigError, match=r"nosuchfs://bucket/r\.csv"):
        op(destination="nosuchfs://bucket/r.csv").execute({})


def test_run_id_and_destination_are_templated(tmp_path: Path) -> None:
    with make_dag("report_template"):
        task = op(run_id="{{ ti_run }}", destination=str(tmp_path) + "/{{ ds }}/sdd.csv")
    task.render_template_fields({"ti_run": "17", "ds": "2026-01-02"})
    assert task.run_id == "17"
    assert task.destination == str(tmp_path / "2026-01-02" / "sdd.csv")


# -- against the emulator ---------------------------------------------------------------------------


@pytest.mark.integration
def test_emulator_report_to_xcom(emu: Any) -> None:
    run_id = finished_run(emu)
    text = op(run_id=run_id).execute({})
    assert text.startswith(HEADER + "\n")
    assert "public,customers,phone" in text


@pytest.mark.integration
def test_emulator_report_to_local_file_and_memory(emu: Any, tmp_path: Path, memory_fs: Any) -> None:
    run_id = finished_run(emu)
    target = tmp_path / "sdd" / f"{run_id}.csv"
    assert op(run_id=str(run_id), destination=str(target)).execute({}) == str(target)
    expected = op(run_id=run_id).execute({})
    assert target.read_text() == expected
    assert op(run_id=run_id, destination="memory://reports/x.csv").execute({}) == "memory://reports/x.csv"
    assert memory_fs.cat("/reports/x.csv").decode() == expected


@pytest.mark.integration
def test_emulator_report_too_big_for_xcom(emu: Any, tmp_path: Path) -> None:
    run_id = finished_run(emu, name="big [emulator:report_bytes=300000]")
    with pytest.raises(DataMasqueConfigError, match="max_xcom_bytes"):
        op(run_id=run_id, max_xcom_bytes=100_000).execute({})
    target = tmp_path / "big.csv"
    op(run_id=run_id, max_xcom_bytes=100_000, destination=target.as_uri()).execute({})
    size = target.stat().st_size
    assert 290_000 < size <= 300_000
    assert target.read_text().startswith(HEADER)


@pytest.mark.integration
def test_emulator_big_report_streams_with_flat_memory(emu: Any, tmp_path: Path) -> None:
    total = 24 * 1024 * 1024
    run_id = finished_run(emu, name=f"huge [emulator:report_bytes={total}]")
    target = tmp_path / "huge.csv"
    tracemalloc.start()
    try:
        op(run_id=run_id, destination=str(target), chunk_size=256 * 1024).execute({})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert target.stat().st_size > total - 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while streaming a {total}-byte report"


@pytest.mark.integration
def test_emulator_missing_report_both_modes(emu: Any, tmp_path: Path) -> None:
    run_id = finished_run(emu, yaml_text=MASK_YAML, name="no-discovery")
    with pytest.raises(DataMasqueNotFoundError, match="run_data_discovery"):
        op(run_id=run_id).execute({})
    with pytest.raises(DataMasqueNotFoundError, match="run_data_discovery"):
        op(run_id=run_id, destination=str(tmp_path / "r.csv")).execute({})
    with pytest.raises(AirflowSkipException):
        op(run_id=run_id, if_missing="skip").execute({})
    with pytest.raises(AirflowSkipException):
        op(run_id=run_id, if_missing="skip", destination="memory://reports/none.csv").execute({})
    assert list(tmp_path.iterdir()) == []
    assert not fsspec.filesystem("memory").exists("/reports/none.csv")


# -- the direct socket-to-file copy -------------------------------------------------------------------


class _OneShotServer:
    """Answers every request with the same raw bytes, then closes the connection (no keep-alive)."""

    def __init__(self, answer: bytes) -> None:
        import socket
        import threading

        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


def _token_connection(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_DATAMASQUE_DEFAULT",
        json.dumps(
            {
                "conn_type": "datamasque",
                "host": url,
                "extra": {"api_token": "t0ken-for-tests", "max_retries": 0},
            }
        ),
    )


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            + b"x" * 300,
            id="short-content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"12c\r\n" + b"x" * 300 + b"\r\n",
            id="chunked-without-last-chunk",
        ),
    ],
)
def test_a_body_cut_short_over_real_http_fails_and_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: bytes
) -> None:
    """The direct socket-to-file copy checks the length itself, as urllib3 would have."""
    server = _OneShotServer(answer)
    try:
        _token_connection(monkeypatch, server.url)
        target = tmp_path / "report.csv"
        with pytest.raises(DataMasqueTransportError, match=r"Lost the connection to DataMasque .* run 42"):
            op(destination=str(target), chunk_size=128).execute({})
    finally:
        server.close()
    assert os.listdir(tmp_path) == []


@pytest.mark.integration
def test_emulator_report_to_a_local_file_is_read_straight_into_one_buffer(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local files take the direct copy (socket into one reused buffer); the bytes are the same
    as a plain download of the same URL."""
    import hashlib

    import requests

    from airflow_provider_datamasque.operators import reports

    total = 3 * 1024 * 1024 + 17
    run_id = finished_run(emu, name=f"big [emulator:report_bytes={total}]")
    taken: list[str] = []
    real = reports._blocks_into

    def spy(*args: Any) -> Any:
        taken.append("direct")
        return real(*args)

    monkeypatch.setattr(reports, "_blocks_into", spy)
    target = tmp_path / "report.csv"
    op(run_id=run_id, destination=str(target), chunk_size=64 * 1024).execute({})
    plain = requests.get(
        f"{emu.url}/api/runs/{run_id}/sdd-report/",
        headers={"Authorization": f"Token {emu.api_token}"},
        timeout=30,
    )
    assert taken == ["direct"]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(plain.content).hexdigest()
    assert target.stat().st_size == len(plain.content)
