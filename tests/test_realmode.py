"""Real mode: `kata serve` on free loopback ports, called over real HTTP, stopped cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from harness.realmode import ORDER


def free_base_port() -> int:
    """A base port with len(ORDER) free ports after it (probed, then released)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + len(ORDER) >= 65535:
            continue
        ok = True
        for port in range(base, base + len(ORDER)):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    pytest.skip("no run of free loopback ports")


@pytest.fixture
def served():
    base = free_base_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(base)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        # The server prints one line per service and then "ready"; reading
        # those lines is the wait (bounded by the read itself, no sleeping).
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        else:
            pytest.fail(f"kata serve exited early: {proc.stderr.read()}")
        yield base, lines, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_services_answer_over_real_http_and_stop_cleanly(served):
    base, lines, proc = served
    assert any(f"http://127.0.0.1:{base}/docs" in line for line in lines)
    with httpx.Client(timeout=10) as http:
        user = http.get(f"http://127.0.0.1:{base}/users/user-1")
        assert user.status_code == 200 and user.json()["id"] == "user-1"
        docs = http.get(f"http://127.0.0.1:{base + ORDER.index('payments')}/openapi.json")
        assert "/charges" in docs.json()["paths"]
        # The docs pages work offline: every script and style they load is the service's own.
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = http.get(f"http://127.0.0.1:{base}{page}").text
            assert "https://" not in html.replace("https://fastapi.tiangolo.com", ""), html
            script = http.get(f"http://127.0.0.1:{base}/docs-assets/{asset}")
            assert script.status_code == 200 and len(script.content) > 100_000
        # The gateway calls three other services over real HTTP.
        profile = http.get(f"http://127.0.0.1:{base + ORDER.index('gateway')}/profile/user-1")
        assert profile.status_code == 200
        assert profile.json()["user"]["id"] == "user-1" and profile.json()["errors"] == {}
        # Idempotency holds over real HTTP too.
        payments = f"http://127.0.0.1:{base + ORDER.index('payments')}/charges"
        body = {"order_id": "o-1", "amount": 10}
        first = http.post(payments, json=body, headers={"Idempotency-Key": "k-1"})
        again = http.post(payments, json=body, headers={"Idempotency-Key": "k-1"})
        assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    # Nothing listens any more: every service stopped with the process.
    for port in range(base, base + len(ORDER)):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_serve_refuses_a_port_in_use(capsys):
    from harness.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert "is in use" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_also_stops(served):
    _, _, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
