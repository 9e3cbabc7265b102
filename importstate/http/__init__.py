"""The REST API of Behaviour: rest (Rocket.Chat's import endpoints, login included) over ASGI.

:func:`create_app` builds the Starlette application over any
:class:`~importstate.ImportService`; :func:`serve` runs it with uvicorn over
one SQLite file, as ``importstate serve`` does.

Needs the ``server`` extra (``pip install 'importstate[server]'``);
without it, importing this module raises :class:`~importstate.MissingExtra`.
"""

from importstate._extras import needs

with needs("server", "importstate's REST server"):
    import anyio  # noqa: F401 - the modules below run on Starlette, uvicorn and AnyIO
    import starlette  # noqa: F401 - same
    import uvicorn  # noqa: F401 - same

from importstate._limits import DEFAULT_MAX_BODY, Limits
from importstate.http._app import create_app
from importstate.http._openapi import openapi_document
from importstate.http._routes import ENDPOINTS, Endpoint
from importstate.http._server import DEFAULT_HOST, DEFAULT_PORT, serve

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY",
    "DEFAULT_PORT",
    "ENDPOINTS",
    "Endpoint",
    "Limits",
    "create_app",
    "openapi_document",
    "serve",
]
