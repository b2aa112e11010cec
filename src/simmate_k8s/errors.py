"""Errors a user can fix.

Domain code (database, results, flows, preload, engine, server, jobs) raises
:class:`SimmateError` subclasses: plain exceptions that pickle across Dask workers and carry one
line that says what is wrong and how to fix it. Only the command layer turns them into
:class:`UserError` (printed as ``Error: <message>``, exit code 2): see ``simmate_k8s.cli``.
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


class BackendError(SimmateError):
    """Prefect Server or Kubernetes cannot do what was asked: unreachable, refused, or it does
    not have the run, flow or release."""


class ServerError(BackendError):
    """Prefect Server is not there, refuses the request or lacks what the command needs."""


class KubernetesError(BackendError):
    """No usable kube context, or the Kubernetes API refused or lacks what was asked."""


class SchemaNotCreatedError(SchemaError):
    """The results database has no tables, and this login may not create them (a writer role):
    its owner has to (the chart's results-schema Job), which may be running right now."""


def install_extra(extra: str) -> str:
    """The command that installs an optional part of pyproject.toml (``chart``, ``hpc``): the
    project image leaves them out, a checkout has them (scripts/install.sh)."""
    return f"pip install 'simmate-k8s[{extra}]'"


class UserError(click.ClickException):
    """Bad input or configuration, at the command layer. Click prints ``Error: <message>``."""

    exit_code = 2
