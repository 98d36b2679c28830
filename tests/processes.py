"""Real processes for tests that need them: `glimpse serve` and the fake upstream, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.paths import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Glimpse or OpenTelemetry setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLIMPSE_", "OTEL_")) and k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback test URL)
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Process:
    """A child process whose output goes to a log file next to its working directory (read it on failure)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="glimpse-test-", suffix=".log")[1])
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = 15, timeout: float = 30) -> tuple[int, str]:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        self.popen.wait(timeout=timeout)
        return self.popen.returncode, self.log_path.read_text(errors="replace")


def start_fake_upstream(chunk_delay: float = 0.0) -> tuple[Process, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = Process([sys.executable, "-m", "tests.fakes.serve_openai", str(port), str(chunk_delay)], env, ROOT)
    wait_for_port(port)
    return process, f"http://127.0.0.1:{port}/v1"


def start_glimpse(workdir: Path, *, max_open_files: int | None = None, env: dict[str, str] | None = None,
                  **settings: str) -> tuple[Process, str]:
    """`glimpse serve` with these settings; `max_open_files`: its RLIMIT_NOFILE (soft and hard), set before exec;
    `env`: other variables (OTEL_*), set as given."""
    port = free_port()
    environment = clean_env(GLIMPSE_PORT=str(port), GLIMPSE_SIGNING_SECRET="process-test-signing-secret-0123456789",
                            # loopback callers, many sessions and streams: rate limits off unless a test sets them
                            GLIMPSE_SESSION_RATE_PER_MINUTE="0", GLIMPSE_UPLOAD_RATE_PER_MINUTE="0",
                            GLIMPSE_CHAT_RATE_PER_MINUTE="0", GLIMPSE_CONVERSATION_RATE_PER_MINUTE="0")
    environment.update({f"GLIMPSE_{k.upper()}": v for k, v in settings.items()})
    environment.update(env or {})
    environment.setdefault("GLIMPSE_METRICS_PORT", "0")  # single-port, as tests/conftest.py's proxies
    command = [sys.executable, "-m", "glimpse", "serve"]
    if max_open_files is not None:
        command = [sys.executable, "-c", "import os, resource, sys; n = int(sys.argv[1]); "
                   "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])",
                   str(max_open_files), *command]
    process = Process(command, environment, workdir)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base + "/healthz")
    return process, base
