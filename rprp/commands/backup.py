"""`rprp backup`: the case DB, Prefect's database and the keys, in one archive (rprp/backup.py)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def run(argv: list[str]) -> int:
    from infra.settings import get_settings
    from rprp.backup import BackupError, describe, take_backup

    parser = argparse.ArgumentParser(
        prog="rprp backup",
        description="Write the case DB, Prefect's database and the signing key (with the Prefect "
                    "server's credentials) into one archive, readable by you only. Safe while "
                    "rprp up runs: each database is copied as one consistent snapshot, Prefect's "
                    "first, so the case record is never behind it.")
    parser.add_argument("--out", type=Path, default=None,
                        help="the archive to write (default: rprp-backup-<UTC time>.tar.gz here)")
    args = parser.parse_args(argv)
    out = args.out or Path(f"rprp-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz")
    try:
        manifest = take_backup(get_settings(), out,
                               os.environ.get("RPRP_PREFECT_DATABASE_URL", "").strip())
    except BackupError as error:
        print(f"rprp backup: {error}", file=sys.stderr)
        return 1
    print(f"backup written: {out.resolve()}\n{describe(manifest)}\n"
          "It holds the signing key and the databases' confidential records: keep it as safely "
          "as the databases themselves.")
    return 0
