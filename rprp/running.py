"""Where a running `rprp up` is, so other commands find it without being told.

`rprp up` writes `<data dir>/stack.json` once every part is ready (its URLs and its process id)
and removes it when it stops. `rprp sweep`, `rprp demo` and the like read it before Prefect reads
its settings; PREFECT_API_URL, set by an operator, always wins. This module must not import
Prefect: it runs before Prefect's settings are first read.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.settings import get_settings, reset_settings

STATE_FILE = "stack.json"


@dataclass(frozen=True)
class RunningStack:
    pid: int
    prefect_api_url: str
    prefect_ui_url: str
    portal_url: str


def state_file(data_dir: Path | None = None) -> Path:
    return (data_dir or get_settings().resolved_data_dir) / STATE_FILE


def write_state(data_dir: Path, stack: RunningStack) -> None:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(stack), indent=2) + "\n")
    tmp.replace(path)


def remove_state(data_dir: Path, pid: int) -> None:
    """Only the `rprp up` that wrote the file removes it."""
    found = read_state(data_dir, check_alive=False)
    if found is not None and found.pid == pid:
        (data_dir / STATE_FILE).unlink(missing_ok=True)


def read_state(data_dir: Path | None = None, check_alive: bool = True) -> RunningStack | None:
    """The stack recorded in the data dir, or None if there is none or its process is gone."""
    try:
        data = json.loads(state_file(data_dir).read_text())
        found = RunningStack(**{k: data[k] for k in RunningStack.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive:
        try:
            os.kill(found.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return found


def use_running_stack() -> RunningStack | None:
    """Point this process at the running `rprp up`, unless PREFECT_API_URL is already set; links
    printed or mailed then use the stack's own URLs."""
    found = read_state()
    if found is not None and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = found.prefect_api_url
        os.environ.setdefault("RPRP_PREFECT_UI_URL", found.prefect_ui_url)
        os.environ.setdefault("RPRP_PORTAL_URL", found.portal_url)
    api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if api.endswith("/api"):
        os.environ.setdefault("RPRP_PREFECT_UI_URL", api[: -len("/api")])
    reset_settings()
    return found


def prefect_problem(command: str, api_url: str | None) -> str:
    """One line saying what to do when the Prefect API is not set or not answering; "" if fine."""
    if not api_url:
        return (f"{command}: no Prefect API: start the stack with `rprp up` (same directory or "
                "RPRP_DATA_DIR), or set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api")
    request = urllib.request.Request(f"{api_url.rstrip('/')}/health")
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if auth:  # a server behind PREFECT_SERVER_API_AUTH_STRING answers nothing without it
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status == 200:
                return ""
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return (f"{command}: the Prefect API at {api_url} does not answer: start it with `rprp up`, "
            "or set PREFECT_API_URL to a running Prefect server's API")
