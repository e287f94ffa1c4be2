"""Command line: ``python -m airflow_provider_datamasque.emulator --port 0 ...``.

Prints exactly one line, ``DataMasque emulator listening on <url>``, once the socket is ready, then
serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from airflow_provider_datamasque.emulator.emulator import DEFAULT_PASSWORD, DataMasqueEmulator
from airflow_provider_datamasque.emulator.faults import FaultConfig


def build_parser() -> argparse.ArgumentParser:
    """All flags; fault flags map one-to-one onto FaultConfig fields."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_datamasque.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    parser.add_argument("--username", default="admin")
    parser.add_argument(
        "--password",
        default=None,
        help=f"default: $DATAMASQUE_EMULATOR_PASSWORD or {DEFAULT_PASSWORD!r}",
    )
    parser.add_argument("--run-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--error-statuses", default="500,502,503", help="comma-separated")
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-path", default=None, help='regex on "METHOD /path/"')
    parser.add_argument("--token-expiry-after", type=int, default=None)
    parser.add_argument("--startup-502-seconds", type=float, default=0.0)
    parser.add_argument("--drop-run-start-responses", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run until signalled."""
    args = build_parser().parse_args(argv)
    password = args.password or os.environ.get("DATAMASQUE_EMULATOR_PASSWORD") or DEFAULT_PASSWORD
    statuses = tuple(int(s) for s in args.error_statuses.split(",") if s.strip())
    emu = DataMasqueEmulator(
        host=args.host,
        port=args.port,
        username=args.username,
        password=password,
        run_seconds=args.run_seconds,
        seed=args.seed,
    )
    emu.set_faults(
        FaultConfig(
            error_rate=args.error_rate,
            error_statuses=statuses,
            drop_rate=args.drop_rate,
            rate_limit_rate=args.rate_limit_rate,
            retry_after=args.retry_after,
            latency=args.latency,
            path_pattern=args.fault_path,
            token_expiry_after=args.token_expiry_after,
            drop_run_start_responses=args.drop_run_start_responses,
            seed=args.seed,
        )
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emu.start()
    if args.startup_502_seconds > 0:
        emu.unavailable(args.startup_502_seconds)
    print(f"DataMasque emulator listening on {emu.url}", flush=True)
    while not stop.wait(0.5):
        pass
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
