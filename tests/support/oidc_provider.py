"""A real OpenID Connect provider on loopback: node-oidc-provider (npm), started from
tests/support/oidc/provider.mjs with Node 20+. Its packages come from the project's own
package-lock.json (`npm ci`, run here when node_modules is missing)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.stack import free_port

HERE = Path(__file__).resolve().parent / "oidc"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str


def install() -> None:
    """`npm ci` from the lock file, once."""
    if (HERE / "node_modules" / "oidc-provider").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm (Node 20 or later) is needed for the SSO tests: "
                           "apt-get install nodejs npm")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                   capture_output=True, timeout=300)


@contextmanager
def oidc_provider(redirect_uri: str, accounts: dict[str, dict], log: Path) -> Iterator[Provider]:
    """The provider, listening until the block ends; `accounts` maps a login to its claims
    (email, name, groups)."""
    install()
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}", "rprp-portal", "test-client-secret-0123456789")
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_CLIENT_ID": provider.client_id,
           "OIDC_CLIENT_SECRET": provider.client_secret, "OIDC_REDIRECT_URI": redirect_uri,
           "OIDC_ACCOUNTS": json.dumps(accounts)}
    with log.open("ab") as out:
        process = subprocess.Popen(["node", str(HERE / "provider.mjs")], cwd=HERE, env=env,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        metadata = f"{provider.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(metadata, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("oidc-provider did not start within 30 s")
            time.sleep(0.2)
        yield provider
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
