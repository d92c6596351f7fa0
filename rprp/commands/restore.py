"""`rprp restore`: put a `rprp backup` archive back, all of it or nothing (rprp/backup.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def run(argv: list[str]) -> int:
    from infra.settings import get_settings
    from rprp.backup import BackupError, describe, read_manifest, restore_backup

    parser = argparse.ArgumentParser(
        prog="rprp restore",
        description="Restore the case DB, Prefect's database and the keys from a `rprp backup` "
                    "archive, into the databases and data dir this environment names "
                    "(RPRP_DATA_DIR, RPRP_DATABASE_URL, RPRP_PREFECT_DATABASE_URL). rprp up must "
                    "be stopped. Everything is checked first; a failure changes nothing.")
    parser.add_argument("archive", type=Path, help="the .tar.gz that rprp backup wrote")
    parser.add_argument("--replace", action="store_true",
                        help="overwrite databases that already hold data (default: refuse)")
    parser.add_argument("--keep-current-key", action="store_true",
                        help="keep RPRP_SECRET_KEY (or the data dir's key) instead of the "
                             "backup's: account links emailed before the backup stop working")
    parser.add_argument("--check", action="store_true",
                        help="only check the archive is whole and say what it holds")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(f"{args.archive}: whole\n{describe(read_manifest(args.archive))}")
            return 0
        manifest = restore_backup(
            get_settings(), args.archive,
            os.environ.get("RPRP_PREFECT_DATABASE_URL", "").strip(),
            replace=args.replace, keep_current_key=args.keep_current_key)
    except BackupError as error:
        print(f"rprp restore: {error}", file=sys.stderr)
        return 1
    print(f"restored from {args.archive}\n{describe(manifest)}\n"
          "Start the stack (rprp up): it brings the case DB's schema up to date and the cases "
          "carry on from where the backup found them.")
    return 0
