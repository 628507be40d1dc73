"""Where cli.py's table of lazy commands looks for `netspec import`; the command lives in `command.py`.

To go when cli.py names `netspec.importer` instead (the CLI is being reworked in parallel).
"""

from .command import import_command

__all__ = ["import_command"]
