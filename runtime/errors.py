"""Errors that are the user's mistake, not the program's.

Scripts turn a ``UserError`` into one ``error: ...`` line on stderr and exit
status 2 (see ``cli.run``); anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad input: unknown name, missing or unreadable file, impossible value."""


class DivergedError(Exception):
    """Training produced a NaN or infinite loss (exit status 1, last checkpoint kept)."""


class WriteError(Exception):
    """A file of the run could not be written (a full disk, a missing permission): exit status 1,
    every file written before stays intact."""
