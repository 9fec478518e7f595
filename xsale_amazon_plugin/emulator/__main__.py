"""Run the SP-API emulator in the foreground: ``python -m xsale_amazon_plugin.emulator``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import SpApiEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xsale_amazon_plugin.emulator",
        description="Local Amazon SP-API (Reports) + LWA emulator for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN",
        help="register LWA credentials at start-up (repeatable)",
    )
    args = parser.parse_args(argv)

    emulator = SpApiEmulator(args.host, args.port)
    for spec in args.account:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            parser.error("--account must look like CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN")
        emulator.add_account(*parts)

    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    emulator.start()
    print(f"SP-API emulator listening on {emulator.url}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
    print("SP-API emulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
