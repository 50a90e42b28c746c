"""A Siyu server on a local port for the HTTP benches (coupons, campaigns, ingest --server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_server(url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": url,
        "SIYU_DATA_DIR": str(data_dir),
        "SIYU_SECRET_KEY": "bench-secret-" + "x" * 40,
        "SIYU_CONSOLE": "false",
    }
    command = [
        sys.executable, "-m", "uvicorn", "siyu.app:create_app", "--factory",
        "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:  # it died starting (its error is on stderr above)
            raise RuntimeError(f"the server exited with status {server.returncode} while starting")
        time.sleep(0.3)
    server.kill()
    raise RuntimeError("the server did not come up within 60 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its live children (Linux ``/proc``).

    With ``--workers N`` uvicorn's parent only watches; the N worker processes do the work.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(cpu_seconds(int(kid)) for kid in kids)
