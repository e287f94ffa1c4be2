"""Run every benchmark and rewrite ``benchmarks/RESULTS.md``: ``python -m benchmarks.run [--quick]``.

Each benchmark runs in a fresh interpreter of its own, as an Airflow task or triggerer process would:
what one leaves behind (a heap grown by a thousand triggers, threads, freed-but-kept memory) must
not weigh on the next one's figures. The child writes its results as JSON for this process to render.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import hook_overhead, log_polling, many_triggers, parse_cost, report_streaming, seed_upload
from benchmarks._common import BenchOutput, Result, machine_info

BENCHMARKS: list[tuple[str, Callable[[bool], BenchOutput]]] = [
    ("parse_cost", parse_cost.run),
    ("hook_overhead", hook_overhead.run),
    ("log_polling", log_polling.run),
    ("many_triggers", many_triggers.run),
    ("report_streaming", report_streaming.run),
    ("seed_upload", seed_upload.run),
]
RESULTS = Path(__file__).with_name("RESULTS.md")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(outputs: dict[str, BenchOutput], timings: dict[str, float], quick: bool, total: float) -> str:
    info = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run"
        + (" --quick`, smoke mode" if quick else "`")
        + ").",
        "",
        f"- Date: {now}",
        f"- Machine: `{info['platform']}`, {info['cpu_count']} CPUs",
        f"- Python {info['python']}, Airflow {info['airflow']}",
        f"- Total runtime: {total:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
        + ")",
        "",
        "Each benchmark runs in a fresh interpreter of its own, so none inherits another's heap or threads. "
        "The emulator runs in a child process in benchmarks 2-6, so its CPU is not counted against the "
        "client, but it shares this machine's cores with the client (and with anything else running); "
        "many_triggers pins the emulator and the client to separate CPUs, as a remote DataMasque would be.",
        "",
        "many_triggers measures the trigger as shipped (native async: aiohttp on the event loop, one shared "
        "session and login per connection) against the other design, the sync hook in asyncio.to_thread "
        "(kept in the benchmark only); its Details section says which design won each figure and why.",
        "",
        "| benchmark | figure | goal | measured | pass |",
        "|---|---|---|---|---|",
    ]
    for output in outputs.values():
        for r in output.results:
            verdict = "info" if r.passed is None else ("PASS" if r.passed else "**MISS**")
            note = f" ({r.notes})" if r.notes else ""
            lines.append(
                f"| {r.benchmark} | {_cell(r.figure)} | {_cell(r.goal)} | {_cell(r.measured + note)} | {verdict} |"
            )
    misses = [miss for output in outputs.values() for miss in output.misses]
    lines += ["", "## Goals missed: why, and what would close them", ""]
    lines += [f"- {miss}" for miss in misses] or ["- None."]
    lines += ["", "## Details", ""]
    for name, output in outputs.items():
        if output.details:
            lines += [f"### {name}", ""]
            for detail in output.details:
                lines += [detail, ""]
    return "\n".join(lines).rstrip() + "\n"


def _crashed(name: str, error: str) -> BenchOutput:
    return BenchOutput(
        results=[Result(name, "benchmark run", "completes", "crashed", False)],
        misses=[
            f"{name}: the benchmark crashed: {error.strip().splitlines()[-1] if error.strip() else 'no output'}"
        ],
    )


def run_child(name: str, quick: bool, out: str) -> int:
    """``--child NAME``: run one benchmark in this process and write its output to ``out`` as JSON."""
    func = dict(BENCHMARKS)[name]
    try:
        output = func(quick)
        code = 0
    except Exception:
        error = traceback.format_exc()
        print(error, file=sys.stderr)
        output, code = _crashed(name, error), 1
    Path(out).write_text(json.dumps(dataclasses.asdict(output)))
    return code


def run_in_child(name: str, quick: bool) -> tuple[BenchOutput, bool]:
    """One benchmark in a fresh interpreter; (its output, whether it failed)."""
    with tempfile.TemporaryDirectory(prefix="dm-bench-") as workdir:
        out = Path(workdir, "output.json")
        command = [sys.executable, "-m", "benchmarks.run", "--child", name, "--out", str(out)]
        code = subprocess.run(command + (["--quick"] if quick else []), check=False).returncode
        if not out.exists():
            return _crashed(
                name, f"the benchmark process exited with {code} before writing its results"
            ), True
        data = json.loads(out.read_text())
    output = BenchOutput(
        results=[Result(**result) for result in data["results"]],
        details=list(data["details"]),
        misses=list(data["misses"]),
    )
    return output, code != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller smoke run (about a minute or two)")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    parser.add_argument(
        "--no-write", action="store_true", help="print the results, do not rewrite RESULTS.md"
    )
    parser.add_argument("--child", choices=[name for name, _ in BENCHMARKS], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        return run_child(args.child, args.quick, args.out)
    outputs: dict[str, BenchOutput] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    failed = False
    for name, _ in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        outputs[name], crashed = run_in_child(name, args.quick)
        failed = failed or crashed
        timings[name] = time.perf_counter() - start
        for r in outputs[name].results:
            verdict = "info" if r.passed is None else ("PASS" if r.passed else "MISS")
            print(f"  [{verdict}] {r.figure}: {r.measured} (goal {r.goal})", file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    text = render(outputs, timings, args.quick, total)
    if args.no_write:
        print(text)
    else:
        RESULTS.write_text(text)
        print(f"wrote {RESULTS} ({total:.0f} s)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
