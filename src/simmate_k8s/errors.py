"""Errors a user can fix.

Domain code (database, results, flows, preload, engine) raises :class:`SimmateError` subclasses:
plain exceptions that pickle across Dask workers and carry one line that says what is wrong and
how to fix it. Only the command layer turns them into :class:`UserError` (printed as
``Error: <message>``, exit code 2): see ``simmate_k8s.cli``.
"""

import click


class SimmateError(Exception):
    """A problem with the user's input or configuration; ``str()`` is one line."""


class InputError(SimmateError):
    """An input file or parameter that cannot be used."""


class SettingsError(SimmateError):
    """An environment setting that cannot be used."""


class DatabaseError(SimmateError):
    """The results database cannot be used (unreachable, refused, wrong schema)."""


class DatabaseAuthError(DatabaseError):
    """The database refused the credentials: retrying cannot help."""


class SchemaError(DatabaseError):
    """The results database's schema is not the one this release writes."""


def install_extra(extra: str) -> str:
    """The command that installs an optional part of pyproject.toml (``chart``, ``hpc``): the
    project image leaves them out, a checkout has them (scripts/install.sh)."""
    return f"pip install 'simmate-k8s[{extra}]'"


class UserError(click.ClickException):
    """Bad input or configuration, at the command layer. Click prints ``Error: <message>``."""

    exit_code = 2
