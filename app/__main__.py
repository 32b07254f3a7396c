"""`python -m app <command>` and the `forgehand` script (pyproject.toml names this module's
`main`): the command line of app/cli (SPEC §2)."""

import sys

from app.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
