"""Real mode: the same shop services under uvicorn on 127.0.0.1, over real HTTP.

Each service gets its own port (``base_port`` + its index in :data:`ORDER`),
its OpenAPI docs at ``/docs`` (and ``/redoc``), served from files installed
with the project (fastapi-offline's copy of Swagger UI and ReDoc), so they
work on a laptop with no network, and calls the others over HTTP with
:class:`RealClient`, which speaks the harness's client interface: the same
kata code runs against the simulator and against real sockets.

>>> ports = port_map(8000)
>>> ports["users"], ports["gateway"]
(8000, 8006)
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .http import ConnectError, ConnectionReset, RequestTimeout, Response
from .network import Client

__all__ = ["ORDER", "RealClient", "build_apps", "offline_docs", "port_map", "serve"]

ORDER = ("users", "catalog", "orders", "inventory", "payments", "notifications", "gateway")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def port_map(base_port: int, services: tuple[str, ...] = ORDER) -> dict[str, int]:
    return {name: base_port + ORDER.index(name) for name in services}


class RealClient(Client):
    """The harness client interface over real HTTP (httpx): a :class:`Client` whose
    ``request`` goes over sockets (``get``/``post``/... come with it).

    >>> # client = RealClient({"users": 8000}); r = await client.get("users", "/users/user-1")
    """

    def __init__(self, ports: dict[str, int], caller: str = "client", host: str = "127.0.0.1"):
        self.ports = ports
        self.caller = caller
        self.host = host
        self._http = httpx.AsyncClient()

    def url(self, target: str, path: str) -> str:
        service = target.rsplit("-", 1)[0] if target not in self.ports and "-" in target else target
        if service not in self.ports:
            raise ConnectError(f"unknown address {target!r} (services: {', '.join(self.ports)})", target=target)
        return f"http://{self.host}:{self.ports[service]}{path}"

    async def request(self, method: str, target: str, path: str, *, json: Any = None, body: bytes | None = None,
                      headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Response:
        try:
            r = await self._http.request(method, self.url(target, path), json=json, content=body,
                                         headers=headers, params=params, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"{self.caller} gave up on {method} {target}{path} after {timeout} s",
                                 target=target) from exc
        except httpx.ConnectError as exc:
            raise ConnectError(f"connection refused by {target}", target=target) from exc
        except httpx.TransportError as exc:
            raise ConnectionReset(f"{target}: {exc}", target=target) from exc
        return Response(r.status_code, dict(r.headers), r.content, instance=target)


    async def aclose(self) -> None:
        await self._http.aclose()


def build_apps(ports: dict[str, int], *, seed: int = 0, host: str = "127.0.0.1"):
    """One app per service, wired to call the others over HTTP."""
    from .world import World

    world = World(seed=seed)  # provides contexts and databases; its virtual loop is not used
    apps = {}
    for name in ports:
        instance = world.add_instance(name)
        instance.ctx.client = RealClient(ports, caller=instance.address, host=host)
        instance.ctx.clock = lambda: asyncio.get_running_loop().time()
        apps[name] = offline_docs(instance.app)
    return world, apps


DOCS_ASSETS = "/docs-assets"  # where each app serves Swagger UI's and ReDoc's files


def offline_docs(app):
    """Replace FastAPI's ``/docs`` and ``/redoc`` pages, which load Swagger UI and ReDoc
    from a CDN, with pages whose scripts the app serves itself (what fastapi-offline's
    ``FastAPIOffline`` does for a new app, done to an existing one)."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in pages]
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png", with_google_fonts=False)

    return app


async def serve(base_port: int, *, host: str = "127.0.0.1", services: tuple[str, ...] = ORDER,
                seed: int = 0, ready=None, stop: asyncio.Event | None = None, log_level: str = "warning") -> None:
    """Serve every service until ``stop`` is set. ``ready(ports)`` is called once all listen."""
    import uvicorn

    if host not in LOOPBACK:
        raise ValueError(f"real mode binds to loopback only (127.0.0.1, localhost, ::1), not {host!r}")
    ports = port_map(base_port, services)
    world, apps = build_apps(ports, seed=seed, host=host)
    servers = [uvicorn.Server(uvicorn.Config(apps[name], host=host, port=port, log_level=log_level,
                                             lifespan="off"))
               for name, port in ports.items()]
    for server in servers:
        server.install_signal_handlers = lambda: None  # one handler for all, below
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()
            raise OSError("a server stopped while starting (port in use?)")
        await asyncio.sleep(0.01)  # real mode: real time is the point
    if ready is not None:
        ready(ports)
    stop = stop or asyncio.Event()
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for server in servers:  # a graceful shutdown: close listeners, finish requests
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for instance in world.net.instances.values():
            await instance.ctx.client.aclose()
