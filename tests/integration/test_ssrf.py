"""The SSRF matrix through real sockets: each spelling of a non-public destination is refused
before any connection is made (a loopback receiver counts connections, so a hole shows up
as a connection or as a network error instead of a refusal), and redirects are not followed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest

from control.delivery import guard
from control.settings import ControlSettings
from tests.integration.conftest import Seed, run
from tests.integration.test_delivery import Receiver, Reply, _attempt, _one_delivery, _state


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


@pytest.fixture
def strict(control_settings: ControlSettings) -> ControlSettings:
    assert control_settings.allow_private_destinations is False
    return msgspec.structs.replace(
        control_settings, delivery_connect_timeout_s=1.0, delivery_read_timeout_s=1.0
    )


# Each reaches (or would reach) a non-public address; {port} is the loopback receiver's.
MATRIX = {
    "loopback": "https://127.0.0.1:{port}/hook",
    "loopback elsewhere in 127/8": "https://127.0.0.2:{port}/hook",
    "decimal": "https://2130706433:{port}/hook",
    "octal": "https://0177.0.0.1:{port}/hook",
    "hex": "https://0x7f.1:{port}/hook",
    "hex dotted": "https://0x7f.0x0.0x0.0x1:{port}/hook",
    "short": "https://127.1:{port}/hook",
    "unspecified 0.0.0.0": "https://0.0.0.0:{port}/hook",
    "unspecified 0": "https://0:{port}/hook",
    "localhost": "https://localhost:{port}/hook",
    "localhost with a trailing dot": "https://localhost.:{port}/hook",
    "::1": "https://[::1]:{port}/hook",
    "::ffff:127.0.0.1": "https://[::ffff:127.0.0.1]:{port}/hook",
    "::ffff:7f00:1": "https://[::ffff:7f00:1]:{port}/hook",
    "::ffff:10.0.0.1": "https://[::ffff:10.0.0.1]/hook",
    "10/8": "https://10.0.0.1/hook",
    "172.16/12": "https://172.16.0.1/hook",
    "192.168/16": "https://192.168.1.1/hook",
    "metadata": "https://169.254.169.254/latest/meta-data/",
    "metadata decimal": "https://2852039166/latest/meta-data/",
    "fd00::/8": "https://[fd00::1]/hook",
    "fe80::/10": "https://[fe80::1]/hook",
    "100.64/10 CGNAT": "https://100.64.0.1/hook",
    "multicast": "https://224.0.0.1/hook",
    "NAT64 of loopback": "https://[64:ff9b::7f00:1]:{port}/hook",
}


@pytest.mark.parametrize("url", MATRIX.values(), ids=MATRIX.keys())
def test_non_public_destinations_are_refused_before_connecting(
    strict: ControlSettings, receiver: Receiver, url: str
) -> None:
    # Given a URL that reaches a non-public address, in one of its spellings
    target = url.format(port=receiver.port)

    # When a delivery is posted to it
    async def post() -> None:
        async with guard.client(strict) as http:
            await guard.post(http, strict, target, b"{}", {})

    # Then the guard refuses it (not a network error: nothing was tried) ...
    with pytest.raises(guard.Refused):
        run(post())
    # ... and no connection reached the receiver
    assert receiver.connections == 0


def test_a_name_resolving_to_loopback_through_the_resolver_is_refused(
    strict: ControlSettings, receiver: Receiver
) -> None:
    # Given a public-looking name that DNS points at loopback (rebinding, or a hostile zone)
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "hooks.customer.example" else []

    # When a delivery is posted to it, Then it is refused without a connection
    async def post() -> None:
        async with guard.client(strict, resolver=resolver) as http:
            url = f"https://hooks.customer.example:{receiver.port}/hook"
            await guard.post(http, strict, url, b"{}", {})

    with pytest.raises(guard.Refused, match=r"127\.0\.0\.1"):
        run(post())
    assert receiver.connections == 0


def test_a_refused_destination_fails_the_delivery_without_retrying(
    strict: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    # Given an endpoint stored with a decimal loopback address
    delivery_id = run(_one_delivery(strict, seed, f"https://2130706433:{receiver.port}/hook"))

    # When it is attempted
    outcome = run(_attempt(strict, delivery_id))

    # Then it fails at once (policy: retrying cannot help), and nothing was sent
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("destination refused")
    delivery, tries = run(_state(strict, delivery_id))
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    assert len(tries) == 1
    assert receiver.connections == 0


def test_an_unparseable_url_is_refused_not_raised(
    strict: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    # Given an endpoint whose stored URL httpx2 cannot parse (an octal IPv4 spelling)
    delivery_id = run(_one_delivery(strict, seed, f"https://0177.0.0.1:{receiver.port}/hook"))

    # When it is attempted, Then the attempt is recorded as refused (no exception escapes
    # the engine, which would leave the delivery to be re-sent forever)
    outcome = run(_attempt(strict, delivery_id))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "not valid" in outcome.error


@pytest.mark.parametrize("internal_path", ["/admin", None], ids=["internal service", "metadata"])
def test_a_302_to_a_private_address_is_not_followed(
    control_settings: ControlSettings, seed: Seed, receiver: Receiver, internal_path: str | None
) -> None:
    # Given a receiver that answers 302 to an internal service, or to the metadata address
    internal = Receiver()
    internal.thread.start()
    try:
        cfg = msgspec.structs.replace(control_settings, allow_private_destinations=True)
        location = (
            internal.url(internal_path)
            if internal_path
            else "http://169.254.169.254/latest/meta-data/"
        )
        receiver.script = [Reply(302, b"", headers={"location": location})]
        delivery_id = run(_one_delivery(cfg, seed, receiver.url()))

        # When the delivery is attempted
        outcome = run(_attempt(cfg, delivery_id))

        # Then the 302 is the answer: a failure (not 2xx, not retryable), not followed
        assert (outcome.status, outcome.status_code) == ("failed", 302)
        assert [r.path for r in receiver.requests] == ["/hook"]
        assert internal.connections == 0
    finally:
        internal.server.shutdown()
        internal.server.server_close()


def _dribbling_server(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """Answers 200 with a 100-byte body, one byte every 0.1 s."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)  # the request (small: one read is enough here)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                for _ in range(100):
                    if stop.wait(0.1):
                        return
                    conn.sendall(b"x")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_a_receiver_dribbling_its_answer_is_cut_off_at_the_attempt_deadline(
    control_settings: ControlSettings,
) -> None:
    # Given a receiver that sends its answer a byte at a time, each well within the read
    # timeout, so that no single read ever times out
    cfg = msgspec.structs.replace(
        control_settings,
        allow_private_destinations=True,
        delivery_connect_timeout_s=0.2,
        delivery_read_timeout_s=0.4,
    )
    stop = threading.Event()
    server, thread = _dribbling_server(stop)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"

    async def post() -> None:
        async with guard.client(cfg) as http:
            await guard.post(http, cfg, url, b"{}", {})

    # When it is posted to, Then the attempt ends at its deadline (1 s here, not the 10 s
    # the body would take) as a timeout, which the engine retries
    started = time.monotonic()
    try:
        with pytest.raises(guard.Timeout, match="longer than 1 s"):
            run(post())
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert time.monotonic() - started < guard.attempt_deadline_s(cfg) + 1.0
