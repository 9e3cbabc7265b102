"""The subcommands of the REST server: ``serve``, and the API users it lets in."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Final

import click
from rich.table import Table
from rich.text import Text

from importstate._limits import Limits
from importstate._time import format_time
from importstate.accounts import PERMISSIONS, Accounts
from importstate.cli._context import (
    INTERRUPTED,
    TERMINATED,
    CommandError,
    Context,
    Terminated,
    pass_context,
)
from importstate.cli._group import cli
from importstate.cli._render import plural
from importstate.cli._values import DURATION, NOT_NEGATIVE, POSITIVE, at_least, between

#: What ``--password`` holds when given without a value: ask on the terminal.
_ASK: Final = "\0ask"


_LIMITS: Final = Limits()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=3000, show_default=True, callback=between(1, 65535),
              help="port to listen on")
@click.option("--max-body", type=int, default=_LIMITS.max_body, metavar="BYTES",
              callback=NOT_NEGATIVE, show_default="10 MiB",
              help="largest request body accepted; larger gets 413")
@click.option("--max-large-bodies", type=int, default=_LIMITS.large_bodies, metavar="N",
              callback=at_least(1), show_default=True,
              help="bodies over 1 MiB read at once; the others wait, then get 503")
@click.option("--max-connections", type=int, default=_LIMITS.max_connections, metavar="N",
              callback=at_least(1), show_default=True,
              help="open connections; one more gets 503 and is closed")
@click.option("--header-timeout", type=DURATION, default=_LIMITS.header_timeout,
              metavar="SECONDS", callback=POSITIVE, show_default=True,
              help="a request's line and headers must arrive within this")
@click.option("--idle-timeout", type=DURATION, default=_LIMITS.idle_timeout, metavar="SECONDS",
              callback=POSITIVE, show_default=True,
              help="an idle kept-alive connection is closed after this")
@click.option("--body-timeout", type=DURATION, default=_LIMITS.body_timeout, metavar="SECONDS",
              callback=POSITIVE, show_default=True,
              help="a body that sends nothing for this long gets 408")
@click.option("--token-ttl", type=DURATION, default=_LIMITS.token_ttl, metavar="DURATION",
              callback=POSITIVE, show_default="90d",
              help="auth tokens expire this long after login (90d, 12h, 30m or seconds)")
@click.option("--tokens-per-user", type=int, default=_LIMITS.tokens_per_user, metavar="N",
              callback=at_least(1), show_default=True,
              help="live tokens per API user; a login beyond drops the oldest")
@click.option("--login-failures", type=int, default=_LIMITS.login_failures, metavar="N",
              callback=at_least(1), show_default=True,
              help="failed logins per name (ten times as many per address) in 5 minutes;"
                   " beyond, 429")
@click.option("--takeover-after", type=DURATION, default=_LIMITS.takeover_after,
              metavar="SECONDS", callback=POSITIVE, show_default=True,
              help="another server takes over an import whose server's lease is this old")
@click.option("--prune-after", type=DURATION, default=None, metavar="DURATION",
              callback=POSITIVE,
              help="delete finished operations (and their staging) last updated longer ago"
                   "  [default: never]")
@click.option("--files", "files_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="where uploaded and downloaded import files go  [default: <db>-files]")
@click.option("--import-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help="downloadPublicImportFile may read local paths inside this directory"
                   "  [default: none]")
@click.option("--allow-private-urls", is_flag=True,
              help="let downloads reach loopback, private and link-local addresses")
@pass_context
def serve(  # noqa: PLR0913, PLR0917 - one argument per option, as Click passes them
    ctx: Context, host: str, port: int, max_body: int, max_large_bodies: int,
    max_connections: int, header_timeout: float, idle_timeout: float, body_timeout: float,
    token_ttl: float, tokens_per_user: int, login_failures: int, takeover_after: float,
    prune_after: float | None, files_dir: Path | None, import_dir: Path | None,
    allow_private_urls: bool,
) -> int:
    """Serve the REST API (Rocket.Chat's import endpoints).

    It runs until SIGTERM or Ctrl-C, which let the batch in hand commit and
    leave a running import importing at its checkpoint; the next
    `importstate serve` resumes it.
    """
    from importstate import http  # noqa: PLC0415 - starts uvicorn only when serving
    from importstate.fetch import UrlRules  # noqa: PLC0415 - loads http.client and ssl

    limits = Limits(
        max_body=max_body, large_bodies=max_large_bodies, max_connections=max_connections,
        header_timeout=header_timeout, idle_timeout=idle_timeout, body_timeout=body_timeout,
        token_ttl=token_ttl, tokens_per_user=tokens_per_user, login_failures=login_failures,
        takeover_after=takeover_after, prune_after=prune_after,
    )
    try:
        http.serve(
            ctx.db, host=host, port=port, dsn=ctx.dsn, limits=limits, files=files_dir,
            url_rules=UrlRules(allow_private=allow_private_urls, import_dir=import_dir),
        )
    # Uvicorn has already said it stopped: the signal only sets the exit status.
    except KeyboardInterrupt:
        return INTERRUPTED
    except Terminated:
        return TERMINATED
    return 0


@cli.group()
def users() -> None:
    """Manage the API users of `importstate serve`.

    The accounts that may call the REST API, not the imported users.
    """


@users.command("add")
@click.argument("name")
@click.option("--password", is_flag=False, flag_value=_ASK, default=None, metavar="[PASSWORD]",
              help="let the user log in (POST /api/v1/login): alone, asks for the password"
                   " twice on the terminal; with a value, takes it (visible in ps and history)")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of standard input")
@click.option("--permission", "permissions", multiple=True, metavar="P",
              shell_complete=lambda *_: list(PERMISSIONS),
              help="run-import or view-import-operations; repeatable  [default: none]")
@click.option("--admin", is_flag=True,
              help="every permission, as Rocket.Chat's admin role has")
@pass_context
def users_add(  # noqa: PLR0913, PLR0917 - one argument per option, as Click passes them
    ctx: Context, name: str, password: str | None, password_stdin: bool,
    permissions: tuple[str, ...], admin: bool,
) -> int:
    """Create an API user; print its id and a first token.

    The token is shown once.
    Without --password or --password-stdin the user can only use its token.
    """
    if admin:
        permissions = tuple(PERMISSIONS)
    secret = _password(ctx, password, password_stdin=password_stdin)
    with _accounts(ctx) as accounts:
        user, credentials = accounts.add(name, password=secret, permissions=permissions)
    if ctx.json:
        ctx.print_json(credentials.to_wire())
        return 0
    ctx.say("created API user ", Text(user.name, style="bold"),
            f" ({', '.join(sorted(user.permissions)) or 'no permissions'})")
    ctx.say("X-User-Id:    ", Text(credentials.user_id, style="bold"))
    ctx.say("X-Auth-Token: ", Text(credentials.auth_token, style="bold"), " (shown only once)")
    return 0


def _password(ctx: Context, given: str | None, *, password_stdin: bool) -> str | None:
    """The password of ``users add``: asked, read from stdin, or as given; ``None``: none."""
    if password_stdin:
        if given is not None:
            msg = "--password and --password-stdin exclude each other"
            raise CommandError(msg)
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if given == _ASK:
        if not sys.stdin.isatty():
            msg = ("--password asks on a terminal, and standard input is not one;"
                   " pipe the password to --password-stdin instead")
            raise CommandError(msg)
        asked: str = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                  err=True)
        return asked
    if given is not None:
        ctx.err.print(Text("importstate: note: a password on the command line is visible to"
                           " other users (ps) and kept in shell history; --password alone"
                           " asks for it, --password-stdin reads it from a pipe"))
    return given


@users.command("list")
@pass_context
def users_list(ctx: Context) -> int:
    """List the API users, revoked ones included."""
    ctx.require_db()
    with _accounts(ctx) as accounts:
        rows = [(user, accounts.tokens(user.name)) for user in accounts.users()]
    if ctx.json:
        ctx.print_json([{
            "userId": user.id, "name": user.name, "permissions": sorted(user.permissions),
            "created": format_time(user.created), "password": user.has_password,
            "revoked": format_time(user.revoked) if user.revoked else None, "tokens": tokens,
        } for user, tokens in rows])
    elif rows:
        table = Table("name", "permissions", "password", "tokens", "created", "revoked",
                      title=f"{plural(len(rows), 'API user')}")
        table.add_column("user id", no_wrap=True)
        for user, tokens in rows:
            table.add_row(
                Text(user.name), ", ".join(sorted(user.permissions)),
                "yes" if user.has_password else "no", f"{tokens:,}",
                f"{user.created:%Y-%m-%d %H:%M}",
                Text(f"{user.revoked:%Y-%m-%d %H:%M}", style="red") if user.revoked else "",
                user.id,
            )
        ctx.show(table)
    else:
        ctx.say("no API users yet: add one with `importstate users add NAME`")
    return 0


@users.command("revoke")
@click.argument("name")
@pass_context
def users_revoke(ctx: Context, name: str) -> int:
    """Revoke an API user: its tokens stop working at once.

    It can no longer log in either.
    """
    with _accounts(ctx) as accounts:
        user = accounts.revoke(name)
    if ctx.json:
        ctx.print_json({"userId": user.id, "name": user.name})
    ctx.say(f"revoked API user {user.name} ({user.id})")
    return 0


def _accounts(ctx: Context) -> contextlib.closing[Accounts]:
    return contextlib.closing(Accounts(ctx.db))
