"""A real `reco2 serve --demo` process on a free loopback port, for the web tests."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.harness import RECO2, cli_env, free_port

READY_TIMEOUT_S = 60.0
USER_LINE = re.compile(r"^demo-user role=(\S+) username=(\S+) password=(\S+) participant=(\S+)$")


class WebServer:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.users: dict[str, tuple[str, str]] = {}  # username -> (password, participant)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [str(RECO2), "serve", "--demo", "-d", str(data_dir), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=cli_env(),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def start(self) -> WebServer:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"server not ready in {READY_TIMEOUT_S} s: {self.log()}"
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"server exited {self.proc.wait()}: {self.log()}"
            if match := USER_LINE.match(line):
                self.users[match[2]] = (match[3], match[4])
            if line.startswith("serving "):
                break
        while time.monotonic() < deadline:  # the port opens just after the line
            try:
                if httpx.get(f"{self.url}/board", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not answer: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
