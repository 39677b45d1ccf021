"""Airflow components run as real processes (``airflow api-server``, ``scheduler``...), the way
users run them, for the tests that talk to Airflow over HTTP.

Each component starts in its own process group and is stopped by group (its workers too), also
when a test fails. Authentication is Airflow's default simple auth manager with a passwords file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support.pg_server import _free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


class AirflowProcesses:
    def __init__(self, home: Path, env: dict[str, str], *, users: dict[str, str], preload: tuple[str, ...] = ()):
        """``preload``: modules every component imports at start-up, through an
        ``airflow_local_settings.py`` in ``<home>/config`` (Airflow imports it in every process).
        LocalExecutor forks its workers from the scheduler and each task from a worker, so a task
        finds them imported instead of importing pandas, scipy and scikit-learn again: measured
        5-8 s of each e2e task's 14-20 s on a busy 2-core machine."""
        self.home, self.port = home, _free_port()
        if preload:
            (home / "config").mkdir(exist_ok=True)
            (home / "config" / "airflow_local_settings.py").write_text(
                '"""Written by tests/support/airflow_server.py: modules the tasks inherit."""\n\n'
                + "".join(f"import {module}  # noqa: F401\n" for module in preload))
        self.base_url = f"http://127.0.0.1:{self.port}"
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps(users))
        self.users = users
        self.env = {**os.environ, **env,
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in users),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                    "AIRFLOW__API__BASE_URL": self.base_url,
                    "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-0123456789abcdef"}
        self.processes: dict[str, subprocess.Popen] = {}

    def run(self, *args: str, timeout: float = 300) -> None:
        """A one-off CLI command (``airflow db migrate``...) in this environment."""
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    def finish(self, component: str, timeout: float = 300) -> None:
        """Wait for a one-off command started with ``start`` (``db migrate`` in the background while
        the test fills its store) and check that it succeeded."""
        process = self.processes.pop(component)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=30)
            raise AssertionError(f"airflow {component}: not done in {timeout} s:\n{self.log(component)}") from None
        assert returncode == 0, f"airflow {component} exited {returncode}:\n{self.log(component)}"

    def start(self, component: str, *args: str) -> None:
        log = (self.home / f"{component}.log").open("ab")
        self.processes[component] = subprocess.Popen(
            [AIRFLOW, component, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_api_server(self, timeout: float = 120) -> None:
        self.start("api-server", "--port", str(self.port), "--workers", "1")
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until the api-server started on ``self.port`` answers its health check."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"api-server not healthy in {timeout} s:\n{self.log('api-server')}"
            time.sleep(0.2)

    def check_alive(self) -> None:
        for component, process in self.processes.items():
            assert process.poll() is None, f"{component} exited {process.returncode}:\n{self.log(component)}"

    def log(self, component: str, tail: int = 4000) -> str:
        return (self.home / f"{component}.log").read_text(errors="replace")[-tail:]

    def token(self, user: str | None = None) -> str:
        user = user or next(iter(self.users))
        response = httpx.post(f"{self.base_url}/auth/token", json={"username": user, "password": self.users[user]},
                              timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["access_token"]

    def stop(self) -> None:
        """Every component's whole process group: its workers go too, even if the leader has exited."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=30)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
