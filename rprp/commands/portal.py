"""`rprp portal`: serve the web portal with uvicorn on RPRP_PORTAL_HOST:RPRP_PORTAL_PORT."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Any

ACCOUNT_PATH = re.compile(r"/account/[^/?\s]+")


class RedactAccountLinks(logging.Filter):
    """Access logs never keep an officer's account token (it opens their account page)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(ACCOUNT_PATH.sub("/account/[redacted]", a) if isinstance(a, str)
                                else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with account tokens redacted from the access log."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_account_links"] = {"()": RedactAccountLinks}
    config["handlers"]["access"]["filters"] = ["redact_account_links"]
    return config


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rprp portal", description="Run the web portal only.")
    parser.add_argument("--host", help="default: RPRP_PORTAL_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, help="default: RPRP_PORTAL_PORT (8000)")
    parser.add_argument("--reload", action="store_true", help="reload on code changes (dev)")
    args = parser.parse_args(argv)

    # Talk to the running `rprp up`'s Prefect server unless told otherwise; never start a
    # temporary in-process server from the portal.
    from rprp.running import read_state

    running = read_state()
    os.environ.setdefault("PREFECT_API_URL", running.prefect_api_url if running
                          else "http://127.0.0.1:4200/api")

    import uvicorn

    from infra.db import create_schema
    from infra.settings import get_settings
    from rprp.exposure import refusal_message

    os.umask(0o077)  # its database, keys and logs are for this user only
    settings = get_settings()
    create_schema()
    host = args.host or settings.portal_host
    port = args.port or settings.portal_port
    refused = refusal_message("rprp portal", host)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    print(f"RPRP portal on http://{host}:{port} (public URL {settings.public_portal_url})",
          flush=True)
    uvicorn.run("portal.app:create_app", factory=True, host=host, port=port,
                reload=args.reload, proxy_headers=True, server_header=False,
                forwarded_allow_ips=settings.forwarded_allow_ips,
                log_config=log_config())
    return 0
