"""``python -m lightning_sanity`` and the ``lightning-sanity`` console script; see :mod:`lightning_sanity.cli`."""

from __future__ import annotations

import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from lightning_sanity.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
