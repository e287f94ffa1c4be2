"""2. Hook overhead: ``DataMasqueHook.get_run`` against a bare ``requests.Session`` GET of the same URL.

Both sides hit the same run on the same (out-of-process) emulator with the same ``Authorization``
header, alternating in blocks so that machine noise lands on both. The emulator counts accepted TCP
connections, which shows whether the hook's pooled session really keeps one connection alive.
"""

from __future__ import annotations

import time

import requests

from benchmarks._common import BenchOutput, RemoteEmulator, Result, new_hook

GOAL_RATIO = 1.15


def run(quick: bool = False) -> BenchOutput:
    calls = 200 if quick else 2000
    block = 100
    output = BenchOutput()
    with RemoteEmulator(run_seconds=3600) as emu:
        run_id = emu.call("create_runs", names=["hook-overhead"], durations=[3600.0])[0]["id"]
        hook = new_hook()
        before_hook = emu.connections_accepted()
        hook.get_run(run_id)  # logs in and opens the pooled connection
        hook_connections = emu.connections_accepted() - before_hook
        token = hook.client._auth_header()["Authorization"]
        url = hook.client.url(f"/api/runs/{run_id}/")
        bare = requests.Session()
        bare.headers.update({"Authorization": token, "Accept": "application/json"})
        bare.get(url, timeout=30).json()
        hook_time = bare_time = 0.0
        done = 0
        while done < calls:
            mark = emu.connections_accepted()
            start = time.perf_counter()
            for _ in range(block):
                hook.get_run(run_id)
            hook_time += time.perf_counter() - start
            hook_connections += emu.connections_accepted() - mark
            start = time.perf_counter()
            for _ in range(block):
                response = bare.get(url, timeout=30)
                response.raise_for_status()
                response.json()
            bare_time += time.perf_counter() - start
            done += block
        hook.close()
        bare.close()
    ratio = hook_time / bare_time
    hook_us, bare_us = hook_time / calls * 1e6, bare_time / calls * 1e6
    output.results.append(
        Result(
            "hook_overhead",
            f"hook.get_run vs bare requests.Session GET ({calls} calls each, blocks of {block})",
            f"ratio <= {GOAL_RATIO}",
            f"{hook_us:.0f} us vs {bare_us:.0f} us per call, ratio {ratio:.3f}",
            ratio <= GOAL_RATIO,
        )
    )
    output.results.append(
        Result(
            "hook_overhead",
            "TCP connections opened by the hook (login + all calls)",
            "1",
            str(hook_connections),
            hook_connections == 1,
        )
    )
    if ratio > GOAL_RATIO:
        output.misses.append(
            f"hook_overhead: ratio {ratio:.3f} > {GOAL_RATIO}: the hook spends {hook_us - bare_us:.0f} us more per call "
            "than a bare GET (header building, secret scrubbing, error mapping, JSON parsing); profile "
            "`DataMasqueClient.request`/`request_json` to close it."
        )
    if hook_connections != 1:
        output.misses.append(
            f"hook_overhead: the hook opened {hook_connections} TCP connections instead of 1: the pooled session "
            "is not kept alive across calls."
        )
    return output
