"""``python -m importstate``, and the ``importstate`` console script."""

import sys

from importstate.errors import MissingExtra


def main() -> int:
    """Run the command line; without the cli extra, say so in one line and return 1."""
    try:
        from importstate.cli import main as run  # noqa: PLC0415 - needs the cli extra
    except MissingExtra as exc:
        sys.stderr.write(f"importstate: {exc}\n")
        return 1
    return run()


if __name__ == "__main__":
    sys.exit(main())
