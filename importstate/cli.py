"""The ``importstate`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from importstate.service import ImportService
from importstate.stores import SQLiteStore


def _print_status(title: str, service: ImportService) -> None:
    print(f"== {title}")
    print(json.dumps(service.status(), indent=2))


def _demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(Path(scratch) / "demo.db")
        seen: set[str] = set()

        def import_user(user: dict[str, Any]) -> None:
            email = user["emails"][0].lower()
            if email in seen:
                msg = f"duplicate email {email}"
                raise ValueError(msg)
            seen.add(email)

        service = ImportService(store, {"api": import_user})
        _print_status("no operation yet", service)
        service.new_operation("demo")
        _print_status("import.new", service)
        users = [
            {
                "username": f"user{n}",
                "emails": [f"user{n % (args.users - 5)}@example.com"],
                "importIds": [str(n)],
            }
            for n in range(args.users)
        ]
        service.add_users(users)
        _print_status("import.addUsers", service)
        service.run()
        _print_status("import.run finished", service)
        for record in service.staged_users():
            print(f"failed: {record['data']['username']}: {record['errors'][0]['message']}")
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="importstate")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="a short scripted import on a temporary SQLite file")
    demo.add_argument("--users", type=int, default=120)
    demo.set_defaults(handler=_demo)
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
