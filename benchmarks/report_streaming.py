"""5. Report streaming: a 100 MB and a 1 GB SDD report to a local file, against ``curl -o``.

``DataMasqueSddReportOperator(run_id=..., destination="file://...").execute(context={})`` downloads
the report from the (out-of-process) emulator. In one untimed run a thread samples this process's
RSS; peak growth over the baseline is the memory the download needs. The timed runs go without the
sampler, as curl's do: three pairs of the operator and ``curl -o`` of the same URL with the same
token (two for 1 GB), alternating which side goes first; the median times give the ratio. The
first execute in the process is timed apart (on a 1 MB report), since it pays for imports once.
Files are deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time

import requests

from benchmarks._common import BenchOutput, RemoteEmulator, Result, RssSampler, mb, median

GOAL_MB = 64.0
GOAL_RATIO = 0.7


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, token: str, path: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["curl", "-sS", "--fail", "-o", path, "-H", f"Authorization: Token {token}", url],
        check=True,
        timeout=600,
    )
    return time.perf_counter() - start


def _requests_download(url: str, token: str, path: str) -> float:
    """Fallback reference when curl is missing: a bare requests stream in 1 MiB chunks."""
    start = time.perf_counter()
    with requests.get(url, headers={"Authorization": f"Token {token}"}, stream=True, timeout=60) as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
    return time.perf_counter() - start


def run(quick: bool = False) -> BenchOutput:
    from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator

    sizes = [10_000_000, 100_000_000] if quick else [100_000_000, 1_000_000_000]
    have_curl = shutil.which("curl") is not None
    reference = "curl -o" if have_curl else "requests stream (curl not installed)"
    output = BenchOutput()
    workdir = tempfile.mkdtemp(prefix="dm-bench-report-")
    try:
        with RemoteEmulator(run_seconds=0.01) as emu:

            def new_run(size: int) -> int:
                run = emu.call("create_runs", names=[f"sdd [emulator:report_bytes={size}]"], durations=[0.01])
                time.sleep(0.1)
                return int(run[0]["id"])

            def ours(run_id: int, path: str, rss: RssSampler | None = None) -> float:
                operator = DataMasqueSddReportOperator(
                    task_id=f"sdd_{run_id}", run_id=run_id, destination=f"file://{path}"
                )
                with rss or contextlib.nullcontext():
                    start = time.perf_counter()
                    operator.execute(context={})  # type: ignore[arg-type]
                    return time.perf_counter() - start

            # The first execute in a fresh process pays one-off costs (importing requests/urllib3,
            # compiled from source when PYTHONDONTWRITEBYTECODE is set): report them on their own so
            # the throughput rows compare streaming, not interpreter start-up.
            first_path = os.path.join(workdir, "first.csv")
            first_s = ours(new_run(1_000_000), first_path)
            os.unlink(first_path)
            output.results.append(
                Result(
                    "report_streaming",
                    "first execute in a fresh process (1 MB report: imports, connection lookup, one GET)",
                    "informational",
                    f"{first_s * 1000:.0f} ms",
                    None,
                    "PYTHONDONTWRITEBYTECODE is set: imports compiled from source"
                    if os.environ.get("PYTHONDONTWRITEBYTECODE")
                    else "",
                )
            )
            for size in sizes:
                run_id = new_run(size)
                ours_path = os.path.join(workdir, f"ours-{size}.csv")
                ref_path = os.path.join(workdir, f"ref-{size}.csv")
                url = f"{emu.url}/api/runs/{run_id}/sdd-report/"
                # Interleaved pairs and medians: other work on the 2 cores swings single runs a lot.
                repeats = 5 if size <= 100_000_000 else 3
                ours_times: list[float] = []
                ref_times: list[float] = []
                ours_cpu = ref_cpu = 0.0  # CPU seconds (user + system), summed over the timed runs
                # Memory on its own, untimed run: the 5 ms sampling thread costs the download up to
                # 3x its CPU at 1 GB (measured), so timed runs go without it, as curl's do.
                rss = RssSampler(interval=0.005)
                ours(run_id, ours_path, rss)
                growth = rss.growth
                os.unlink(ours_path)
                ours_bytes = ref_bytes = 0
                for index in range(repeats):
                    # Alternate who goes first and flush the page cache before each download: the
                    # first big write after a big delete pays for the kernel's cleanup (seen as
                    # seconds of system time at 1 GB), which would otherwise always hit one side.
                    for side in ("ours", "ref") if index % 2 == 0 else ("ref", "ours"):
                        os.sync()
                        if side == "ours":
                            cpu = _cpu(resource.RUSAGE_SELF)
                            ours_times.append(ours(run_id, ours_path))
                            ours_cpu += _cpu(resource.RUSAGE_SELF) - cpu
                            ours_bytes = os.path.getsize(ours_path)
                            os.unlink(ours_path)
                        else:
                            download = _curl if have_curl else _requests_download
                            who = resource.RUSAGE_CHILDREN if have_curl else resource.RUSAGE_SELF
                            cpu = _cpu(who)
                            ref_times.append(download(url, emu.api_token, ref_path))
                            ref_cpu += _cpu(who) - cpu
                            ref_bytes = os.path.getsize(ref_path)
                            os.unlink(ref_path)
                raw_s = _requests_download(url, emu.api_token, ref_path)
                os.unlink(ref_path)
                ours_s, ref_s = median(ours_times), median(ref_times)
                ours_rate, ref_rate = ours_bytes / ours_s, ref_bytes / ref_s
                ratio = ours_rate / ref_rate
                label = mb(size)
                output.results.append(
                    Result(
                        "report_streaming",
                        f"{label} report: peak RSS growth during execute()",
                        f"< {GOAL_MB:.0f} MB",
                        f"{growth / 1e6:.1f} MB",
                        growth / 1e6 < GOAL_MB,
                    )
                )
                output.results.append(
                    Result(
                        "report_streaming",
                        f"{label} report: throughput vs {reference} (median of {repeats} alternating pairs)",
                        f"ratio >= {GOAL_RATIO}",
                        f"{ours_rate / 1e6:.0f} MB/s vs {ref_rate / 1e6:.0f} MB/s, ratio {ratio:.2f}",
                        ratio >= GOAL_RATIO,
                        f"{ours_bytes} bytes, identical size: {ours_bytes == ref_bytes}; ratios of the pairs: "
                        + ", ".join(f"{r / o:.2f}" for o, r in zip(ours_times, ref_times, strict=True)),
                    )
                )
                output.results.append(
                    Result(
                        "report_streaming",
                        f"{label} report: operator vs bare requests stream (1 MiB chunks, same process)",
                        "informational",
                        f"{ours_rate / 1e6:.0f} MB/s vs {ref_bytes / raw_s / 1e6:.0f} MB/s, "
                        f"ratio {ours_rate / (ref_bytes / raw_s):.2f}",
                        None,
                    )
                )
                ours_cpu_gb = ours_cpu / repeats / (ours_bytes / 1e9)
                ref_cpu_gb = ref_cpu / repeats / (ref_bytes / 1e9)
                output.results.append(
                    Result(
                        "report_streaming",
                        f"{label} report: CPU per GB, operator vs {reference} (user + system, mean of the timed runs)",
                        "informational",
                        f"{ours_cpu_gb:.2f} s vs {ref_cpu_gb:.2f} s, ratio {ours_cpu_gb / ref_cpu_gb:.2f}",
                        None,
                    )
                )
                if growth / 1e6 >= GOAL_MB:
                    output.misses.append(
                        f"report_streaming {label}: peak RSS growth {growth / 1e6:.1f} MB >= {GOAL_MB:.0f} MB."
                    )
                if ratio < GOAL_RATIO:
                    output.misses.append(
                        miss_text(
                            label, ratio, reference, ours_rate * raw_s / ref_bytes, ours_cpu_gb / ref_cpu_gb
                        )
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not have_curl:
        output.details.append("curl was not installed: the reference is a bare requests download.")
    return output


def miss_text(label: str, ratio: float, reference: str, vs_bare: float, cpu_ratio: float) -> str:
    """Why the throughput goal was missed, from what this run measured (not a fixed story)."""
    head = f"report_streaming {label}: throughput ratio {ratio:.2f} < {GOAL_RATIO} against {reference}. "
    if cpu_ratio <= 1.0:
        return head + (
            f"The operator used no more CPU per GB than {reference} did ({cpu_ratio:.2f} of it) and "
            f"ran at {vs_bare:.2f} of a bare requests download, so its copy loop was waiting, not "
            "working: the emulator generating the CSV in Python on the shared cores and page-cache "
            "writeback set the pace, and how they fell on each side of a pair decides its ratio "
            "(see the pair ratios)."
        )
    return head + (
        f"The operator used {cpu_ratio:.2f}x the CPU per GB of {reference} and ran at {vs_bare:.2f} of a "
        "bare requests download: its copy loop is part of the gap. Not closed yet."
    )
