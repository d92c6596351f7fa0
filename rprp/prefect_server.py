"""The Prefect server, started one way for `rprp up`, the tests and the bench, and the one way
to register the deployments of prefect.yaml on it.

`prefect server start` runs on loopback as a child process (rprp.processes.Service: its own
process group, one log file), with every setting it reads made explicit, so a stray variable
in the caller's environment cannot change it: its database (SQLite under its PREFECT_HOME
unless given one), its API credentials, where its UI is served and which API that UI calls,
and which of its background services run. What differs between the callers is a parameter:
`rprp up` serves the UI under the portal's gateway with generated credentials; the tests take
a free port and read the log for failures; the bench runs without credentials.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from infra.settings import PROJECT_ROOT
from rprp.processes import LOOPBACK, Service, free_port, http_ok

POOL = "rprp-pool"
DEPLOY_SCRIPT = PROJECT_ROOT / "deployments" / "deploy.py"
UI_SERVE_BASE = "/prefect"  # as the portal's gateway serves it (portal/gateway.py)
# A stray spelling of one of these in the environment must not win over what is set here.
_DATABASE_SETTINGS = ("PREFECT_API_DATABASE_CONNECTION_URL",
                      "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def asyncpg_url(url: str) -> str:
    """Prefect's server needs the asyncpg driver: a plain PostgreSQL URL (as an operator writes
    it) or a psycopg one (as the case DB uses) is given it; any other URL is left as it is."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


@dataclass
class PrefectServer:
    """One `prefect server start`, with its UI, on 127.0.0.1."""

    home: Path  # its PREFECT_HOME; the SQLite database is kept here unless `database_url`
    log_dir: Path | None = None  # where prefect-server.log goes (default: `home`)
    port: int = 0  # 0: a free port, chosen now
    database_url: str = ""
    # PREFECT_SERVER_API_AUTH_STRING: only clients presenting it get in. Empty: an open API.
    auth_string: str = ""
    ui_serve_base: str = UI_SERVE_BASE
    ui_api_url: str = ""  # the API a browser's UI calls (default: this server's own)
    # Background services by Prefect's name (scheduler, late_runs, ...): False turns one off.
    services: Mapping[str, bool] = field(default_factory=dict)
    logging_level: str = ""  # PREFECT_SERVER_LOGGING_LEVEL (default: Prefect's own)
    base_env: Mapping[str, str] | None = None  # the environment to start from (default: ours)
    # A cluster's API replica (rprp.cluster): its own name and log, no background services
    # (they run once, in `prefect server services start`), and settings such as Redis's.
    name: str = "prefect-server"
    no_services: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    service: Service | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def ui_url(self) -> str:
        """The UI as this server serves it (people reach it through the gateway instead)."""
        return f"{self.url}{self.ui_serve_base}"

    @property
    def resolved_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        return asyncpg_url(self.database_url)

    @property
    def log_path(self) -> Path:
        return (self.log_dir or self.home) / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.running

    @property
    def pid(self) -> int:
        assert self.service is not None and self.service.process is not None, "not started"
        return self.service.process.pid

    def env(self) -> dict[str, str]:
        """What the server process sees: `base_env` with its own settings made explicit."""
        env = {key: value for key, value in (os.environ if self.base_env is None else self.base_env).items()
               if key not in _DATABASE_SETTINGS}
        ui_api_url = self.ui_api_url or self.api_url
        env.update({  # both spellings of each, as Prefect reads either
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.resolved_database_url,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.resolved_database_url,
            "PREFECT_SERVER_API_HOST": LOOPBACK,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_SERVER_UI_ENABLED": "true",
            "PREFECT_UI_SERVE_BASE": self.ui_serve_base,
            "PREFECT_SERVER_UI_SERVE_BASE": self.ui_serve_base,
            "PREFECT_UI_API_URL": ui_api_url,
            "PREFECT_SERVER_UI_API_URL": ui_api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        })
        # Prefect's SDK telemetry waits seconds per process for a network it may not have.
        env.setdefault("DO_NOT_TRACK", "1")
        env.pop("PREFECT_API_URL", None)  # the server is the API: it must not look for another
        env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        if self.logging_level:
            env["PREFECT_SERVER_LOGGING_LEVEL"] = self.logging_level
        for name, enabled in self.services.items():
            env[f"PREFECT_SERVER_SERVICES_{name.upper()}_ENABLED"] = str(enabled).lower()
        env.update(self.extra_env)
        return env

    def client_env(self) -> dict[str, str]:
        """What a client of this server (worker, portal, deploy.py) needs to reach it."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_API_AUTH_STRING": self.auth_string}

    def launch(self) -> Service:
        """Start the server and return at once (`rprp up` migrates the case DB meanwhile)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "prefect", "server", "start",
                "--host", LOOPBACK, "--port", str(self.port)]
        if self.no_services:
            argv.append("--no-services")
        self.service = Service(self.name, argv, self.env(),
                               ready=lambda: http_ok(f"{self.api_url}/health"))
        self.service.start(self.log_path.parent)
        return self.service

    def wait_ready(self, timeout: float = 180.0, stop: threading.Event | None = None) -> None:
        """Until its API answers; StackError (quoting its log) if it exits or is not ready."""
        assert self.service is not None, "launch() first"
        self.service.wait_ready(timeout, stop or threading.Event())

    def start(self, timeout: float = 180.0) -> None:
        """Launch and wait until ready; a server that does not come up is stopped."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the server and everything it started, then SIGKILL what is left."""
        if self.service is not None:
            self.service.stop()

    def register_deployments(self, base_env: Mapping[str, str] | None = None,
                             timeout: float = 300.0, stop: threading.Event | None = None) -> None:
        """The work pool and every deployment in prefect.yaml, on this server."""
        env = dict(os.environ if base_env is None else base_env)
        env.update(self.client_env())
        register_deployments(env, self.log_path.parent, timeout, stop)


def worker_polling(api_url: str, name: str, since: datetime, auth_string: str = "") -> bool:
    """The named worker has sent the server a heartbeat since `since`: it is polling the pool
    (a heartbeat from an earlier worker of that name does not count). A worker's readiness."""
    request = urllib.request.Request(
        f"{api_url}/work_pools/{POOL}/workers/filter", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"})
    if auth_string:
        request.add_header("Authorization",
                           "Basic " + base64.b64encode(auth_string.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            workers = json.load(response)
    except (OSError, ValueError):
        return False
    return isinstance(workers, list) and any(
        isinstance(w, dict) and w.get("name") == name and w.get("last_heartbeat_time")
        and datetime.fromisoformat(w["last_heartbeat_time"]) >= since for w in workers)


def deploy_step(env: Mapping[str, str]) -> Service:
    """deployments/deploy.py as a one-shot child: the pool from deployments/work-pool.json, then
    `prefect deploy --all` of prefect.yaml; against the server `env`'s PREFECT_API_URL names."""
    return Service("deploy", [sys.executable, str(DEPLOY_SCRIPT)], dict(env))


def register_deployments(env: Mapping[str, str], log_dir: Path, timeout: float = 300.0,
                         stop: threading.Event | None = None) -> None:
    """Run deploy.py to the end, logging to `log_dir`/deploy.log; StackError if it fails."""
    log_dir.mkdir(parents=True, exist_ok=True)
    deploy_step(env).run_to_end(log_dir, timeout, stop or threading.Event())
