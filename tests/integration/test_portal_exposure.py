"""`rprp portal` started as people start it, in its own process, refusing to listen beyond
loopback with development defaults (the in-process checks are in tests/unit/test_users_command.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_beyond_loopback_the_portal_refuses_development_defaults(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("RPRP_", "PREFECT_"))}
    environment.update({"RPRP_DATA_DIR": str(tmp_path / "data"), "DO_NOT_TRACK": "1"})
    refused = subprocess.run([sys.executable, "-m", "rprp.cli", "portal", "--host", "0.0.0.0"],
                             cwd=ROOT, env=environment, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2
    assert "rprp portal: refusing to listen on 0.0.0.0 (not loopback)" in refused.stderr
    assert "set RPRP_SECRET_KEY" in refused.stderr
    assert "set PREFECT_SERVER_API_AUTH_STRING" in refused.stderr
