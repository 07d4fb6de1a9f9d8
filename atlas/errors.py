"""Errors a user can act on.

Library code raises `AtlasError` with a one-line message that says what went wrong
and how to fix it; only the command-line entry point turns it into an exit code.
"""


class AtlasError(Exception):
    """A problem with the user's input or environment, explained in one line."""
