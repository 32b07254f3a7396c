"""The `forgehand` command line (SPEC §2), one module per command; the composition root, so it
may import anything.
"""

from app.cli import doctor

__all__ = [
    "doctor",
]
