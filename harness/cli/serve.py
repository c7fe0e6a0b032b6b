"""``kata serve [--port N] [--host 127.0.0.1] [--services a,b]``: the shop over real HTTP.

Each service on its own loopback port, with OpenAPI docs at ``/docs``;
stops cleanly on Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

from .common import UsageError


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the shop's services over real HTTP on 127.0.0.1",
                       description="Serve every shop service under uvicorn, one loopback port each.")
    p.add_argument("--port", type=int, default=8000, help="first port (default 8000); services take the next ones")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--services", help="comma-separated subset (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..realmode import LOOPBACK, ORDER, port_map, serve

    if args.host not in LOOPBACK:
        raise UsageError(f"--host {args.host!r}: real mode binds to loopback only (127.0.0.1, localhost, ::1)")
    services = ORDER
    if args.services:
        services = tuple(s.strip() for s in args.services.split(",") if s.strip())
        unknown = [s for s in services if s not in ORDER]
        if unknown:
            raise UsageError(f"unknown service {unknown[0]!r} (shop: {', '.join(ORDER)})")
    if not 1 <= args.port <= 65535 - len(ORDER):
        raise UsageError(f"--port {args.port}: choose a port between 1 and {65535 - len(ORDER)}")
    ports = port_map(args.port, services)
    for name, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            try:
                probe.bind((args.host, port))
            except OSError:
                raise UsageError(f"port {port} (for {name}) is in use; try --port with another base") from None

    def ready(ports: dict[str, int]) -> None:
        for name, port in ports.items():
            print(f"{name:14} http://{args.host}:{port}   docs: http://{args.host}:{port}/docs")
        print("ready: press Ctrl-C to stop", flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.port, host=args.host, services=services, seed=args.seed, ready=ready, stop=stop)

    asyncio.run(main())
    print("stopped", file=sys.stderr)
    return 0
