"""`rprp up`: start the whole stack on this machine (see rprp/stack.py); Ctrl-C stops it."""

from __future__ import annotations

import argparse
import os
import sys

from rprp.processes import LOOPBACK
from rprp.stack import DEFAULT_PREFECT_PORT, StackOptions, run_stack


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"rprp up: {name} must be a port number, not {value!r}") from None


def run(argv: list[str]) -> int:
    from infra.settings import get_settings, reset_settings

    reset_settings()
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="rprp up",
        description="Start the Prefect server and UI, the work pool and deployments, a worker, "
                    "the portal and (unless RPRP_SMTP_HOST is set) a local SMTP sink, all on "
                    "127.0.0.1, with data in RPRP_DATA_DIR. Ctrl-C stops everything.")
    parser.add_argument("--prefect-port", type=int,
                        default=_env_int("RPRP_PREFECT_PORT", DEFAULT_PREFECT_PORT),
                        help="Prefect server, API and UI port (RPRP_PREFECT_PORT, default 4200)")
    parser.add_argument("--portal-port", type=int, default=settings.portal_port,
                        help="portal port (RPRP_PORTAL_PORT, default 8000)")
    parser.add_argument("--no-worker", action="store_true",
                        help="do not start a worker (run one elsewhere: python -m rprp.worker)")
    parser.add_argument("--no-portal", action="store_true", help="do not start the portal")
    parser.add_argument("--host", default=LOOPBACK,
                        help="address the portal listens on (default 127.0.0.1; any other "
                             "needs real users, RPRP_SECRET_KEY and Prefect API credentials)")
    parser.add_argument("--no-demo-users", action="store_true",
                        help="do not create the demo sign-ins")
    parser.add_argument("--cluster", action="store_true",
                        help="a force-shaped installation on loopback instead: PostgreSQL, "
                             "Redis, two Prefect API replicas behind HAProxy, Prefect's services "
                             "on their own, two workers and the portal (RPRP_CLUSTER_POSTGRES_URL, "
                             "RPRP_CLUSTER_REDIS_URL point it at other servers)")
    parser.add_argument("--workers", type=int, default=2, help="with --cluster: workers (2)")
    parser.add_argument("--replicas", type=int, default=2,
                        help="with --cluster: Prefect API replicas (2)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.replicas < 1:
        parser.error("--workers and --replicas must be at least 1")

    from rprp.exposure import refusal_message

    os.umask(0o077)  # databases, mail, keys and logs: this user only
    refused = refusal_message("rprp up", args.host, demo_users=not args.no_demo_users)
    if refused:
        print(refused, file=sys.stderr)
        return 2

    if args.cluster:
        if args.host != LOOPBACK:
            print("rprp up --cluster: the cluster is for this machine only: it binds 127.0.0.1",
                  file=sys.stderr)
            return 2
        from rprp.cluster import options_from_environment, run_cluster

        return run_cluster(settings.resolved_data_dir, options_from_environment(
            args.prefect_port, args.portal_port, portal=not args.no_portal,
            workers=0 if args.no_worker else args.workers, replicas=args.replicas),
            demo_users=not args.no_demo_users)

    options = StackOptions(
        prefect_port=args.prefect_port,
        portal_port=args.portal_port,
        worker=not args.no_worker,
        portal=not args.no_portal,
        prefect_database_url=os.environ.get("RPRP_PREFECT_DATABASE_URL", "").strip(),
        host=args.host,
        demo_users=not args.no_demo_users,
    )
    return run_stack(settings, options)
