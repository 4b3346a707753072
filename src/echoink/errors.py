"""The one base of every error that the user's input causes, so the command line can tell a mistake
in a recipe, a split, a path or a launch (one ``error:`` line) from a bug in echoink (a traceback).

>>> issubclass(UserError, ValueError)  # callers that catch ValueError still catch it
True
"""

from __future__ import annotations


class UserError(ValueError):
    """An error in what the user gave (a recipe, data, a path, a launch, a held lock, a damaged file);
    its message says what and how to proceed. Every other exception is a bug (``cli_errors``)."""
