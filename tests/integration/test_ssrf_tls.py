"""https receivers through the guard: a real TLS server on loopback with certificates made
here (a CA of the test's own, trusted through RICOCHET_DELIVERY_CA_BUNDLE). The guard
connects to the address it checked, yet SNI and certificate verification use the URL's
host name: a name the test's resolver maps to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from control.db import session_factory
from control.delivery import engine, guard
from control.settings import ControlSettings
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.conftest import Seed, resources, run
from tests.integration.test_delivery import _one_delivery, _state

NAME = "hooks.customer.test"


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path  # for NAME
    key_file: Path
    wrong_cert_file: Path  # same CA, for another name
    wrong_key_file: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _leaf(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for NAME and one for another name, all signed by it."""
    home = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ricochet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(home / "ca.pem", home / "cert.pem", home / "key.pem", home / "o.pem", home / "ok.pem")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, cert_file, key_file in (
        (NAME, pki.cert_file, pki.key_file),
        ("other.customer.test", pki.wrong_cert_file, pki.wrong_key_file),
    ):
        cert, key = _leaf(ca, ca_key, name, now)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
    return pki


@dataclass
class TlsReceiver:
    """An https server on 127.0.0.1 recording TCP connections, SNI names and requests."""

    cert_file: Path
    key_file: Path
    tcp_connections: int = 0
    sni: list[str | None] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc,return-value]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, address = self.socket.accept()
                receiver.tcp_connections += 1
                sock.settimeout(5)
                # The handshake happens here; a client that rejects our certificate makes
                # it raise, and the server drops that connection.
                return context.wrap_socket(sock, server_side=True), address

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = NAME) -> str:
        return f"https://{host}:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(pki: Pki) -> Iterator[TlsReceiver]:
    server = TlsReceiver(pki.cert_file, pki.key_file)
    yield server
    server.close()


async def to_loopback(host: str, port: int) -> list[str]:
    """The test's DNS: NAME and its sibling point at the loopback receiver."""
    return ["127.0.0.1"] if host.endswith(".customer.test") else []


@pytest.fixture
def trusting(control_settings: ControlSettings, pki: Pki) -> ControlSettings:
    return msgspec.structs.replace(
        control_settings,
        allow_private_destinations=True,  # the receiver is on loopback
        delivery_ca_bundle=str(pki.ca_file),
        delivery_connect_timeout_s=2.0,
        delivery_read_timeout_s=2.0,
    )


def _post(cfg: ControlSettings, url: str) -> guard.Response:
    async def go() -> guard.Response:
        async with guard.client(cfg, resolver=to_loopback) as http:
            return await guard.post(
                http, cfg, url, b'{"n":1}', {"content-type": "application/json"}
            )

    result: guard.Response = run(go())
    return result


def test_https_verifies_the_certificate_against_the_url_host_while_connecting_to_the_checked_ip(
    trusting: ControlSettings, tls: TlsReceiver
) -> None:
    # Given a receiver whose certificate names NAME, which resolves to 127.0.0.1
    # When a delivery is posted to https://NAME:port/hook
    response = _post(trusting, tls.url())

    # Then it arrives over TLS: the connection went to the checked address, SNI and the Host
    # header carry the name, and the certificate was verified for that name
    assert (response.status_code, response.body) == (200, b"ok")
    assert tls.sni == [NAME]
    ((path, headers, body),) = tls.requests
    assert (path, body) == ("/hook", b'{"n":1}')
    assert headers["host"] == f"{NAME}:{tls.port}"


def test_https_to_a_certificate_for_another_name_is_not_sent(
    trusting: ControlSettings, pki: Pki
) -> None:
    # Given a receiver whose (CA-signed) certificate is for another name than the URL's
    wrong = TlsReceiver(pki.wrong_cert_file, pki.wrong_key_file)
    try:
        # When a delivery is posted, Then verification fails and no request is made
        with pytest.raises(guard.SendError, match=r"[Hh]ostname mismatch"):
            _post(trusting, wrong.url())
        assert wrong.tcp_connections == 1
        assert wrong.requests == []
    finally:
        wrong.close()


def test_https_to_a_certificate_of_an_untrusted_ca_is_not_sent(
    trusting: ControlSettings, tls: TlsReceiver
) -> None:
    # Given the system's CAs only (no RICOCHET_DELIVERY_CA_BUNDLE)
    system = msgspec.structs.replace(trusting, delivery_ca_bundle=None)

    # When a delivery is posted to the receiver with the test CA's certificate
    # Then verification fails and nothing is sent
    with pytest.raises(guard.SendError, match="CERTIFICATE_VERIFY_FAILED"):
        _post(system, tls.url())
    assert tls.requests == []


def test_https_to_a_name_resolving_to_loopback_is_refused_before_the_handshake(
    trusting: ControlSettings, tls: TlsReceiver
) -> None:
    # Given the production policy (no private destinations) and a name resolving to loopback
    strict = msgspec.structs.replace(trusting, allow_private_destinations=False)

    # When / Then the guard refuses it and the TLS server never sees a connection
    with pytest.raises(guard.Refused, match="non-public"):
        _post(strict, tls.url())
    assert tls.tcp_connections == 0


def test_a_signed_delivery_over_https_succeeds_end_to_end(
    trusting: ControlSettings, seed: Seed, tls: TlsReceiver
) -> None:
    # Given an endpoint at https://NAME:port/hook
    delivery_id = run(_one_delivery(trusting, seed, tls.url()))

    # When the engine attempts it through the guarded client
    async def attempt() -> engine.AttemptOutcome:
        async with (
            resources(trusting) as (db, _),
            guard.client(trusting, resolver=to_loopback) as http,
        ):
            return await engine.attempt(session_factory(db), http, trusting, delivery_id)

    outcome = run(attempt())

    # Then it succeeds, and the receiver can verify what it got
    assert (outcome.status, outcome.status_code) == ("succeeded", 200)
    delivery, _ = run(_state(trusting, delivery_id))
    ((_, headers, body),) = tls.requests
    assert body == delivery.body
    timestamp = int(headers[TIMESTAMP_HEADER.lower()])
    assert verify(headers[SIGNATURE_HEADER.lower()], "whsec_current", timestamp, body)
