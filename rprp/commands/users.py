"""`rprp users add|disable|enable|reset-password|list`: the portal's sign-ins in the case DB.

Passwords come from a prompt (asked twice, never echoed) or, with --password-stdin, from the
first line of standard input; never from the command line, where `ps` and shell history keep
them.
"""

from __future__ import annotations

import argparse
import getpass
import sys

PROG = "rprp users"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise SystemExit(f"{PROG}: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise SystemExit(f"{PROG}: no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise SystemExit(f"{PROG}: the two passwords are not the same")
    return first


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Manage who can sign in to the "
                                     "portal (roles: psd, psd-decision-maker, reviewer, analyst, "
                                     "operator).")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user")
    add.add_argument("username", help="what they sign in with: usually their email address")
    add.add_argument("--role", action="append", required=True,
                     help="a role (repeat for more than one)")
    add.add_argument("--email", default="", help="their email, if the user name is not it")
    add.add_argument("--name", default="", help="their display name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input")
    add.add_argument("--no-password", action="store_true",
                     help="single sign-on only: no password")
    for name, text in (("disable", "stop a user signing in (ends their sessions now)"),
                       ("enable", "let a disabled user sign in again")):
        action = sub.add_parser(name, help=text)
        action.add_argument("username")
    reset = sub.add_parser("reset-password", help="set a new password (ends their sessions)")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input")
    sub.add_parser("list", help="list users, their roles and whether they can sign in")
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from infra.db import create_schema
    from portal import users

    create_schema()
    try:
        if args.action == "add":
            password = None if args.no_password else _password(args)
            user = users.add_user(args.username, roles=args.role, password=password,
                                  email=args.email, display_name=args.name)
            print(f"Added {user.username} ({user.roles})")
        elif args.action == "disable":
            ended = users.set_disabled(args.username, True)
            print(f"Disabled {args.username}; {ended} session(s) ended")
        elif args.action == "enable":
            users.set_disabled(args.username, False)
            print(f"Enabled {args.username}")
        elif args.action == "reset-password":
            ended = users.reset_password(args.username, _password(args))
            print(f"New password set for {args.username}; {ended} session(s) ended")
        else:
            rows = users.list_users()
            if not rows:
                print("No users yet: add one with `rprp users add EMAIL --role psd`")
            for user in rows:
                how = ("disabled" if user.disabled else
                       "password" if user.password_hash else "single sign-on")
                print(f"{user.username:<40} {user.roles:<32} {how:<15} {user.display_name}")
    except users.UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0
