"""The `rprp` command: each subcommand lives in rprp/commands/<name>.py with `run(argv) -> int`."""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "up": "Start the whole stack: Prefect server and UI, worker, deployments, portal, mail",
    "demo": "Create sample referrals on a running stack and drive them down the main paths",
    "deadline": "Compute a working-day deadline: --served <ISO datetime> --working-days <N>",
    "sweep": "Run the deadline sweep once now (or --as-of <ISO datetime>)",
    "migrate": "Upgrade the case database schema to the latest migration",
    "portal": "Run the web portal only",
    "users": "Manage portal sign-ins: users add|disable|enable|reset-password|list",
    "bench": "Run the benchmark harness",
    "chaos": "Cases through their lives on the loopback cluster while parts of it fail",
    "analytics": "Monitoring figures: analytics disproportionality --from --to --characteristic",
    "foi": "Write the FOI return (seed 002): --from DATE --to DATE --out FILE.csv|.xlsx",
    "import": "Load history from the previous system: import cases|workforce FILE.csv",
    "backup": "Back up the case DB, Prefect's database and the keys together: --out FILE",
    "restore": "Restore a backup (rprp up stopped): restore FILE [--replace] [--check]",
}
# Commands whose name is a Python keyword live in a module named otherwise.
MODULES = {"import": "history_import"}


def usage() -> str:
    lines = ["usage: rprp <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def _prefect_credentials() -> None:
    """Commands run beside `rprp up` present its Prefect server's credentials (data dir)."""
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return
    from infra.settings import get_settings
    from rprp.stack import PREFECT_AUTH_FILE

    key = get_settings().resolved_data_dir / PREFECT_AUTH_FILE
    if key.exists():
        os.environ["PREFECT_API_AUTH_STRING"] = key.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"rprp: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    # Databases, mail, keys and logs the product writes are for its own user only.
    os.umask(0o077)
    _prefect_credentials()
    module = importlib.import_module(f"rprp.commands.{MODULES.get(name, name)}")
    return int(module.run(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
