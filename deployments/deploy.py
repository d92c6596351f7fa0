"""Create the rprp-pool work pool and register every deployment in prefect.yaml, on any server.

    PREFECT_API_URL=http://prefect.force.internal:4200/api uv run python deployments/deploy.py

Safe to run again: the pool is overwritten with deployments/work-pool.json and each deployment
is updated in place (same name, same id). `rprp up` runs this against its own server.

The pull step in prefect.yaml sends each flow run to `{{ $PWD }}`, which `prefect deploy`
resolves when it runs: here, the project root of this checkout. If the workers' checkout is
somewhere else (say /opt/rprp on every worker machine), say so with --project-dir /opt/rprp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = "rprp-pool"
POOL_TEMPLATE = ROOT / "deployments" / "work-pool.json"


async def ensure_work_pool() -> None:
    """Create (or update) the process work pool from deployments/work-pool.json."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    template = json.loads(POOL_TEMPLATE.read_text(encoding="utf-8"))
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=POOL, type="process", base_job_template=template,
                           description="RPRP flow runs: process workers started from the "
                                       "project checkout (rprp up, or `python -m rprp.worker`)"),
            overwrite=True)
    print(f"work pool {POOL} (process) is ready", flush=True)


def deploy_all(project_dir: Path) -> int:
    """`prefect --no-prompt deploy --all` from the project root; returns its exit code."""
    env = dict(os.environ)
    env["PWD"] = str(project_dir)  # what `{{ $PWD }}` in the pull step becomes
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deployments/deploy.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", type=Path, default=ROOT,
                        help="where the workers' checkout of this repository is "
                             "(default: this checkout, %(default)s)")
    args = parser.parse_args(argv)
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # Without it Prefect would deploy to a throwaway in-process server.
        print("deploy.py: set PREFECT_API_URL to the Prefect server's API, "
              "e.g. http://127.0.0.1:4200/api", file=sys.stderr)
        return 2
    print(f"deploying to {PREFECT_API_URL.value()}", flush=True)
    asyncio.run(ensure_work_pool())
    return deploy_all(args.project_dir.expanduser().absolute())


if __name__ == "__main__":
    raise SystemExit(main())
