"""The one error type for mistakes a user can fix: printed as one line, exit code 2."""

import click


class UserError(click.ClickException):
    """Bad input or configuration. Click prints ``Error: <message>`` and exits with 2."""

    exit_code = 2
