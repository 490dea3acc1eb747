"""Benchmarks: LoCoMo evidence recall over REST (``locomo``) and latency at scale (``scale``).

This module holds the small harness both share: a ``memos serve`` subprocess on
a free port, latency percentiles and resident-memory readings.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx
import numpy as np

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class BenchError(RuntimeError):
    """A benchmark could not run (server did not start, an API call failed)."""


def log_progress(line: str) -> None:
    logger.info("%s", line)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int | None = None) -> float | None:
    """Resident set size (VmRSS) of ``pid`` (default: this process) in MiB; None off Linux."""
    path = Path(f"/proc/{pid if pid is not None else 'self'}/status")
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return None


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean/max of a list of durations, in milliseconds."""
    if not seconds:
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"),
                "mean_ms": float("nan"), "max_ms": float("nan")}
    ms = np.asarray(seconds, np.float64) * 1000.0
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class ServerProcess:
    """``python -m memos serve`` on ``data_dir`` and a free port, for the life of a ``with``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 90.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = port or free_port()
        self.log_path = log_path or data_dir / "server.log"
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError("the server is not running")
        return self._proc.pid

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        cmd = [
            sys.executable, "-m", "memos", "serve",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--log-level", "WARNING",
        ]
        logger.info("starting %s", " ".join(cmd))
        env = {**os.environ, **self.env} if self.env else None
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(
                    f"memos serve exited with {self._proc.returncode}:\n{self._log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"memos serve did not answer within {self.startup_timeout_s:.0f} s")

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
