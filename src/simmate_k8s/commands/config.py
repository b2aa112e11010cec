"""``simmate-k8s config``: where Prefect Server lives, stored per user (set, unset, show).

Only click is imported at module level.
"""

from __future__ import annotations

import click

from simmate_k8s.errors import UserError


@click.group()
def config():
    """Where Prefect Server lives, stored per user.

    \b
    Precedence (highest first):
      api-url  PREFECT__CLOUD__API or PREFECT__SERVER__ENDPOINT > config file > default
      ui-url   PREFECT__SERVER__UI__ENDPOINT > config file > derived from api-url
      project  SIMMATE_PROJECT > config file > "simmate"
    """


@config.command("set")
@click.argument("key", type=click.Choice(["api-url", "ui-url", "project"]))
@click.argument("value")
@click.option("--basic-auth", metavar="USER[:PASSWORD]",
              help="HTTP basic auth for api-url (an ingress with auth); asks for the "
                   "password when only USER is given.")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
              help="Send this header with every API request (api-url only); repeatable.")
def config_set(key, value, basic_auth, headers):
    """Store a setting: api-url URL, ui-url URL or project NAME.

    \b
    Examples:
      simmate-k8s config set api-url http://localhost:4200/graphql
      simmate-k8s config set api-url https://prefect.example.com/graphql --basic-auth alice
      simmate-k8s config set project materials

    Setting api-url replaces the credentials stored with the previous one. The file is
    written with mode 0600.
    """
    from simmate_k8s import server_config

    if key != "api-url" and (basic_auth or headers):
        raise UserError("--basic-auth and --header go with `config set api-url`")
    if basic_auth is not None and ":" not in basic_auth:
        basic_auth += ":" + click.prompt(f"password for {basic_auth}", hide_input=True)
    auth = server_config.auth_headers(basic_auth, headers)
    path = server_config.set_value(key, value, auth)
    shown = server_config.redact_url(value) if key.endswith("url") else value
    click.echo(f"{key} = {shown}" + (f" (+ {len(auth)} header(s))" if auth else "")
               + f"  [{path}]")


@config.command("unset")
@click.argument("key", type=click.Choice(["api-url", "ui-url", "project"]))
def config_unset(key):
    """Remove a stored setting (api-url also removes its credentials)."""
    from simmate_k8s import server_config

    path = server_config.unset_value(key)
    click.echo(f"{key} unset  [{path}]")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def config_show(as_json):
    """Show the settings in effect and where each comes from (secrets redacted)."""
    from simmate_k8s import server_config
    from simmate_k8s.commands.output import print_json, print_table

    shown = server_config.describe(server_config.load())
    if as_json:
        print_json(shown)
        return
    print_table(["SETTING", "VALUE", "SOURCE"], [
        [key, shown[key]["value"], shown[key]["source"]] for key in ("api-url", "ui-url", "project")
    ] + [[f"header {name}", value, "file"] for name, value in shown["headers"].items()])
    click.echo(f"config file: {shown['config_file']}")
