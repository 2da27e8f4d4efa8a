"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) that render on a closed network.

The pages load Swagger UI's and ReDoc's files from the ``fastapi-offline``
package, served by the service under :data:`DOCS_ASSETS_URL`, never from a
CDN. ReDoc's bundle has one outside address of its own, its "powered by" logo
on cdn.redoc.ly, which it loads whatever its options say: the service serves
that bundle with the address replaced by an inline image
(:data:`REDOC_SCRIPT_URL`). Their Content-Security-Policy keeps both pages to
this origin, and Swagger UI sends the schema to no validator.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline

#: Where the Swagger UI and ReDoc files of ``/docs`` and ``/redoc`` are served from.
DOCS_ASSETS_URL = "/docs-assets"

#: ReDoc's bundle with its logo inline (:func:`redoc_script`); the package's own is beside it.
REDOC_SCRIPT_URL = "/redoc/redoc.standalone.js"
#: The package's assets: Swagger UI's and ReDoc's release bundles.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_INLINE_LOGO = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@cache
def redoc_script() -> bytes:
    """Return the package's ReDoc bundle with its one outside address made an inline image."""
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, _INLINE_LOGO)


#: Everything from this origin only; inline styles and ``blob:`` workers are how the
#: bundles run, ``data:`` their inline images.
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'"
)


def _add_page(
    app: FastAPI,
    path: str,
    name: str,
    render: Callable[..., HTMLResponse],
    title: str,
    assets: dict[str, str],
    **options: Any,
) -> None:
    """Add the page ``render`` makes at ``path``: its assets under the root path, the policy set.

    ``assets`` maps ``render``'s URL arguments to paths on this service; ``options``
    are its other arguments.
    """

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        html = render(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - {title}",
            **{name: f"{root}{url}" for name, url in assets.items()},
            **options,
        )
        html.headers["Content-Security-Policy"] = DOCS_POLICY
        return html

    page.__name__ = name  # the route's name, as a function of its own would give it
    app.get(path, include_in_schema=False)(page)


def make_docs_app(*, docs: bool = True, **options: Any) -> FastAPI:
    """Return a FastAPI app with the docs' assets mounted and ``/docs`` and ``/redoc`` added.

    ``options`` go to :class:`fastapi.FastAPI` (title, lifespan, ...). Without
    ``docs`` the app has no documents at all (no ``/openapi.json`` either).
    """
    if not docs:
        return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **options)
    app = FastAPIOffline(docs_url=None, redoc_url=None, static_url=DOCS_ASSETS_URL, **options)
    _add_page(
        app,
        "/docs",
        "swagger_ui",
        get_swagger_ui_html,
        "Swagger UI",
        {
            "swagger_js_url": f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            "swagger_css_url": f"{DOCS_ASSETS_URL}/swagger-ui.css",
            "swagger_favicon_url": f"{DOCS_ASSETS_URL}/favicon.png",
        },
        # No validator badge: Swagger UI would send the schema to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    _add_page(
        app,
        "/redoc",
        "redoc",
        get_redoc_html,
        "ReDoc",
        {"redoc_js_url": REDOC_SCRIPT_URL, "redoc_favicon_url": f"{DOCS_ASSETS_URL}/favicon.png"},
        with_google_fonts=False,
    )

    @app.get(REDOC_SCRIPT_URL, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            redoc_script(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return app
