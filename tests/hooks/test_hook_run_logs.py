"""Run logs: whole log, incremental reads with a cursor and ``Range``, JSON and plain text."""

from __future__ import annotations

import json
import re

import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueNotFoundError
from airflow_provider_datamasque.hooks.runs import LogCursor, format_log_entry, parse_log_tail

from ._support import BASE, calls

LOG_URL = f"{BASE}/api/runs/7/log/"


def entry(i: int, level: int = 20) -> dict:
    return {"timestamp": f"2024-01-01T00:00:{i:02d}Z", "log_level": level, "message": f"line {i} ünïcode"}


def compact(entries: list) -> bytes:
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()


def emulator_style(entries: list) -> bytes:
    return ("[" + ",\n".join(json.dumps(e) for e in entries) + "]").encode()


def pretty(entries: list) -> bytes:
    return (json.dumps(entries, indent=2, ensure_ascii=False) + "\n").encode()


def text_log(entries: list) -> bytes:
    return "".join(f"{e['timestamp']} INFO {e['message']}\n" for e in entries).encode()


def indented_text_log(entries: list) -> bytes:
    return "".join(f"  {e['timestamp']} at step {e['message']}\n" for e in entries).encode()


class GrowingLog:
    """A fake log endpoint whose document grows between reads; may honour ``Range``."""

    def __init__(self, render, honour_range: bool) -> None:
        self.render = render
        self.honour_range = honour_range
        self.entries: list = []
        self.ranges: list = []

    def __call__(self, request, context):
        document = self.render(self.entries)
        header = request.headers.get("Range")
        self.ranges.append(header)
        if header and self.honour_range:
            start = int(re.match(r"bytes=(\d+)-$", header).group(1))
            if start >= len(document):
                context.status_code = 416
                context.headers["Content-Range"] = f"bytes */{len(document)}"
                return b""
            context.status_code = 206
            context.headers["Content-Range"] = f"bytes {start}-{len(document) - 1}/{len(document)}"
            return document[start:]
        context.status_code = 200
        return document


def expected_items(render, entries):
    if render in (text_log, indented_text_log):
        return render(entries).decode().splitlines()
    return entries


@pytest.mark.parametrize("render", [compact, emulator_style, pretty, text_log, indented_text_log])
@pytest.mark.parametrize("honour_range", [True, False], ids=["range", "no-range"])
def test_incremental_reads_never_duplicate_or_lose(hook, api, render, honour_range):
    server = GrowingLog(render, honour_range)
    api.get(LOG_URL, content=server)
    seen: list = []
    cursor = None
    for batch in (0, 1, 0, 3, 2, 0, 5):
        for _ in range(batch):
            server.entries.append(entry(len(server.entries)))
        new, cursor = hook.get_run_log_since(7, cursor)
        seen.extend(new)
    new, cursor = hook.get_run_log_since(7, cursor, final=True)
    seen.extend(new)
    assert seen == expected_items(render, server.entries)
    assert cursor.count == len(server.entries)
    # After the first read that found something, only the tail is asked for.
    assert server.ranges[0] is None
    assert any(r and r.startswith("bytes=") for r in server.ranges)


def test_range_header_only_when_offset_positive(hook, api):
    api.get(LOG_URL, content=compact([entry(0)]))
    entries, cursor = hook.get_run_log_since(7)
    assert entries == [entry(0)]
    assert "Range" not in api.last_request.headers
    assert cursor.offset > 0
    hook.get_run_log_since(7, cursor)
    assert api.last_request.headers["Range"] == f"bytes={cursor.offset}-"


def test_cursor_from_dict_and_int(hook, api):
    body = compact([entry(0), entry(1), entry(2)])
    api.get(LOG_URL, content=body)
    entries, cursor = hook.get_run_log_since(7, {"count": 2, "offset": 0})
    assert entries == [entry(2)]
    assert cursor.count == 3
    assert "Range" not in api.last_request.headers
    entries, _ = hook.get_run_log_since(7, 1)
    assert entries == [entry(1), entry(2)]
    assert LogCursor.from_value(cursor.to_dict()) == cursor
    assert LogCursor.from_value({"count": "x"}) == LogCursor()
    assert LogCursor.from_value(True) == LogCursor()
    assert LogCursor.from_value(None) == LogCursor()


def test_206_partial_body(hook, api):
    full = compact([entry(0), entry(1), entry(2)])
    first = compact([entry(0)])
    offset = first.rfind(b"]")
    tail = full[offset:]
    api.get(
        LOG_URL,
        status_code=206,
        content=tail,
        headers={"Content-Range": f"bytes {offset}-{len(full) - 1}/{len(full)}"},
    )
    entries, cursor = hook.get_run_log_since(7, LogCursor(1, offset))
    assert entries == [entry(1), entry(2)]
    assert cursor == LogCursor(3, len(full) - 1)
    assert api.last_request.headers["Range"] == f"bytes={offset}-"


def test_206_partial_entry_is_picked_up_next_time(hook, api):
    full = compact([entry(0), entry(1), entry(2)])
    offset = compact([entry(0)]).rfind(b"]")
    cut = len(full) - 20  # the third entry is cut in half
    api.get(
        LOG_URL,
        [
            {
                "status_code": 206,
                "content": full[offset:cut],
                "headers": {"Content-Range": f"bytes {offset}-{cut - 1}/{len(full)}"},
            },
        ],
    )
    entries, cursor = hook.get_run_log_since(7, LogCursor(1, offset))
    assert entries == [entry(1)]
    api.get(
        LOG_URL,
        status_code=206,
        content=full[cursor.offset :],
        headers={"Content-Range": f"bytes {cursor.offset}-{len(full) - 1}/{len(full)}"},
    )
    entries, cursor = hook.get_run_log_since(7, cursor)
    assert entries == [entry(2)]
    assert cursor.count == 3


def test_200_full_body_is_sliced(hook, api):
    first = compact([entry(0), entry(1)])
    _, cursor = parse_log_tail(first, 0, LogCursor())
    api.get(LOG_URL, content=compact([entry(0), entry(1), entry(2), entry(3)]))
    entries, cursor2 = hook.get_run_log_since(7, cursor)
    assert api.last_request.headers["Range"] == f"bytes={cursor.offset}-"
    assert entries == [entry(2), entry(3)]
    assert cursor2.count == 4


def test_rewritten_log_falls_back_to_count(hook, api):
    _, cursor = parse_log_tail(compact([entry(0), entry(1)]), 0, LogCursor())
    api.get(LOG_URL, content=pretty([entry(0), entry(1), entry(2)]))
    entries, cursor2 = hook.get_run_log_since(7, cursor)
    assert entries == [entry(2)]
    assert cursor2.count == 3


def test_416_means_nothing_new(hook, api):
    api.get(LOG_URL, status_code=416, text="", headers={"Content-Range": "bytes */10"})
    cursor = LogCursor(2, 10)
    assert hook.get_run_log_since(7, cursor) == ([], cursor)


def test_log_not_found(hook, api):
    api.get(LOG_URL, status_code=404, json={"detail": "Not found."})
    with pytest.raises(DataMasqueNotFoundError):
        hook.get_run_log(7)


def test_get_run_log_json(hook, api):
    api.get(LOG_URL, content=emulator_style([entry(0), entry(1, 40)]))
    assert hook.get_run_log(7) == [entry(0), entry(1, 40)]
    assert "Range" not in api.last_request.headers


def test_get_run_log_plain_text_keeps_last_line(hook, api):
    api.get(LOG_URL, text="starting\n\nmasking table t\nfinished", headers={"Content-Type": "text/plain"})
    assert hook.get_run_log(7) == ["starting", "masking table t", "finished"]


def test_incomplete_text_line_waits_unless_final(hook, api):
    api.get(LOG_URL, text="one\ntw")
    entries, cursor = hook.get_run_log_since(7)
    assert entries == ["one"]
    assert cursor == LogCursor(1, 4)


def test_empty_log(hook, api):
    api.get(LOG_URL, content=b"[]")
    entries, cursor = hook.get_run_log_since(7)
    assert entries == []
    assert cursor.count == 0


@pytest.mark.parametrize(
    ("raw", "level", "text"),
    [
        ({"timestamp": "T", "log_level": 40, "message": "bad"}, 40, "[DataMasque T] ERROR: bad"),
        ({"timestamp": "T", "log_level": "30", "message": "w"}, 30, "[DataMasque T] WARNING: w"),
        ({"timestamp": "T", "level": "debug", "message": "d"}, 10, "[DataMasque T] DEBUG: d"),
        ({"timestamp": "T", "log_level": "nonsense", "message": "m"}, 20, "[DataMasque T] INFO: m"),
        ("plain line", 20, "plain line"),
    ],
)
def test_format_log_entry(raw, level, text):
    assert format_log_entry(raw) == (level, text)


def test_log_path_and_method(hook, api):
    api.get(LOG_URL, content=b"[]")
    hook.get_run_log(7)
    assert [r.path for r in calls(api, "GET", "/api/runs/7/log/")] == ["/api/runs/7/log/"]
