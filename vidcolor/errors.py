"""The one base class for errors a user can cause and fix; the CLI prints them as one line."""


class UserError(Exception):
    """Bad input, a bad path, a bad option combination: said in one line, no traceback."""
