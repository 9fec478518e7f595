"""Real processes for the tests: the sample app's ``flask`` CLI, workers, and how they die.

Every process a test starts gets its own session (``start_new_session``), so it can be stopped
by its process group; :func:`kill_tree` also reaches what left that group (RQ's work horse runs
in a session of its own, which is why a SIGKILL of the worker's group alone misses it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFER_COLUMNS = ("seller_sku", "asin", "name", "listing_id", "price", "quantity",
                 "fulfillment_channel", "status", "product_id", "product_id_type", "open_date_raw",
                 "removed_at")
#: The sample app's CLI, as a command line to extend: ``[*FLASK, "xsale-amazon", "worker"]``.
FLASK = [sys.executable, "-m", "flask", "--app", "sample_app"]


def flask(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run one sample-app CLI command to its end; its output is captured as text."""
    return subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def spawn(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen:
    """Start a sample-app CLI command in a session of its own (output discarded unless
    ``popen`` says otherwise)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([*FLASK, *args], cwd=ROOT, env=env, start_new_session=True,
                            **popen)


def cli_environment(url: str, emulator: Any) -> Iterator[dict[str, str]]:
    """The environment of CLI processes on database ``url`` against ``emulator``, seeded with
    the sample app's demo data (created by one ``recover``), with its own RQ queue."""
    import sample_app

    emulator.reset()
    sample_app.seed_emulator(emulator)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        SECRET_KEY="cli-test-secret",
        XSALE_AMAZON_REDIS_URL='"redis://127.0.0.1:6379/9"',
        XSALE_AMAZON_QUEUE='"xa-cli-' + uuid.uuid4().hex[:8] + '"',
        XSALE_AMAZON_SPAPI_ENDPOINT=f'"{emulator.url}"',
        XSALE_AMAZON_LWA_ENDPOINT=f'"{emulator.lwa_url}"',
        XSALE_AMAZON_POLL_INTERVAL="0.2",
        XSALE_AMAZON_POLL_MAX_INTERVAL="0.5",
        XSALE_AMAZON_HEARTBEAT_TIMEOUT="3",
        XSALE_AMAZON_REPORT_REUSE_WINDOW="0",
        XSALE_AMAZON_BATCH_SIZE="2000",
        PYTHONPATH=ROOT,
    )
    init = flask(env, "xsale-amazon", "recover")  # creates and seeds the schema once
    assert init.returncode == 0, init.stderr
    yield env


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (RQ's work horse has its own group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo.extend(children.get(current, []))
    for victim in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process's group (its own session), SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: str | None, lines: int = 40) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return "".join(fh.readlines()[-lines:])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              log: str | None = None) -> None:
    """Wait until ``url`` answers below 500; fail early when ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}:\n"
                               + tail(log))
        try:
            response = httpx.get(url, timeout=2.0, follow_redirects=False)
            if response.status_code < 500:
                return
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last!r})\n" + tail(log))


def engine_of(env: dict[str, str]) -> sa.Engine:
    """An engine on the database of a CLI environment (:func:`cli_environment`)."""
    return sa.create_engine(env["DATABASE_URL"])


def offers_of(engine: sa.Engine, integration_id: int) -> set[tuple]:
    """The integration's offers as comparable tuples of :data:`OFFER_COLUMNS`."""
    cols = ", ".join(OFFER_COLUMNS)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT {cols} FROM xsale_amazon_offer WHERE integration_id = :i"
        ), {"i": integration_id}).all()
    return {tuple(r) for r in rows}
