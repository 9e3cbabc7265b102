"""The subcommands of the REST server: ``serve``, and the API users it lets in."""

from __future__ import annotations

import contextlib

from rich.table import Table
from rich.text import Text

from importstate._time import format_time
from importstate.accounts import Accounts
from importstate.cli._context import CommandError, Context, command, group, option


@command(
    "serve",
    "serve the REST API (Rocket.Chat's import endpoints) until SIGTERM or Ctrl-C",
    option("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    option("--port", type=int, default=3000, help="port to listen on (default: 3000)"),
    option("--max-body", type=int, default=10 * 1024 * 1024, metavar="BYTES",
           help="largest request body accepted; larger gets 413 (default: 10 MB)"),
)
def _serve(ctx: Context) -> int:
    from importstate import http  # noqa: PLC0415 - starts uvicorn only when serving

    args = ctx.args
    if args.max_body < 0:
        msg = "--max-body must not be negative"
        raise CommandError(msg)
    http.serve(ctx.db, host=args.host, port=args.port, max_body=args.max_body, dsn=ctx.dsn)
    return 0


group("users", "manage the API users of `importstate serve` (not the imported users)")


@command(
    "users add",
    "create an API user and print its user id and a fresh auth token (shown once)",
    option("name", metavar="NAME", help="the login name"),
    option("--password", default=None, help="allow POST /api/v1/login with this password"),
    option("--permission", action="append", default=[], metavar="P",
           help="run-import or view-import-operations; repeatable (default: none)"),
)
def _users_add(ctx: Context) -> int:
    with _accounts(ctx) as accounts:
        user, credentials = accounts.add(
            ctx.args.name, password=ctx.args.password, permissions=ctx.args.permission,
        )
    if ctx.json:
        ctx.print_json(credentials.to_wire())
        return 0
    ctx.say("created API user ", Text(user.name, style="bold"),
            f" ({', '.join(sorted(user.permissions)) or 'no permissions'})")
    ctx.say("X-User-Id:    ", Text(credentials.user_id, style="bold"))
    ctx.say("X-Auth-Token: ", Text(credentials.auth_token, style="bold"), " (shown only once)")
    return 0


@command("users list", "list the API users, revoked ones included")
def _users_list(ctx: Context) -> int:
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
                      title="API users")
        table.add_column("user id", no_wrap=True)
        for user, tokens in rows:
            table.add_row(
                Text(user.name), ", ".join(sorted(user.permissions)),
                "yes" if user.has_password else "no", str(tokens), f"{user.created:%Y-%m-%d %H:%M}",
                Text(f"{user.revoked:%Y-%m-%d %H:%M}", style="red") if user.revoked else "",
                user.id,
            )
        ctx.out.print(table)
    else:
        ctx.say("no API users yet: add one with `importstate users add NAME`")
    return 0


@command(
    "users revoke",
    "revoke an API user: its tokens stop working at once and it can no longer log in",
    option("name", metavar="NAME", help="the login name"),
)
def _users_revoke(ctx: Context) -> int:
    with _accounts(ctx) as accounts:
        user = accounts.revoke(ctx.args.name)
    if ctx.json:
        ctx.print_json({"userId": user.id, "name": user.name})
    ctx.say(f"revoked API user {user.name} ({user.id})")
    return 0


def _accounts(ctx: Context) -> contextlib.closing[Accounts]:
    return contextlib.closing(Accounts(ctx.db))
