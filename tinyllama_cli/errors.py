"""The one exception type for mistakes a user can cause.

Modules raise `UserError` with a single sentence that names the problem and the fix; the CLI
prints it on one line and exits with status 2, without a traceback. Anything else that escapes
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input the user can fix: missing file, bad config, wrong format, mismatch."""
