"""A real RFC 3161 time-stamp authority on 127.0.0.1 for tests: OpenSSL's own ``openssl ts -reply`` behind HTTP.

Its certificate (extended key usage timeStamping, critical) is issued by a CA of its own, so a verifier trusts its
time-stamps only when that CA is among its trust anchors, as with a public TSA.
"""

from __future__ import annotations

import datetime as dt
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from facegen.provenance.credentials import key_usage


@dataclass
class TimestampAuthority:
    url: str
    ca_pem: bytes  # the TSA's root: add it to the trust anchors to trust its time-stamps
    requests: list[str] = field(default_factory=list)  # Content-Type of each request received


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_tsa_files(directory: Path) -> bytes:
    """CA, TSA certificate + key, and the ``openssl ts`` configuration in ``directory``; returns the CA's PEM."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA CA"))
        .issuer_name(_name("test TSA CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA"))
        .issuer_name(ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    (directory / "tsa.pem").write_bytes(tsa.public_bytes(pem))
    (directory / "chain.pem").write_bytes(tsa.public_bytes(pem) + ca_pem)
    (directory / "tsa.key").write_bytes(
        tsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(
        "[tsa]\ndefault_tsa = tsa_config\n[tsa_config]\n"
        f"dir = {directory}\nserial = $dir/serial\nsigner_cert = $dir/tsa.pem\ncerts = $dir/chain.pem\n"
        "signer_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n"
        "digests = sha256, sha384, sha512\naccuracy = secs:1\ness_cert_id_alg = sha256\ness_cert_id_chain = no\n"
        "tsa_name = yes\nordering = no\n"
    )
    return ca_pem


@contextmanager
def running_tsa(directory: Path) -> Iterator[TimestampAuthority]:
    """A TSA answering time-stamp queries at the yielded URL until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tsa.cnf"
    authority = TimestampAuthority(url="", ca_pem=_write_tsa_files(directory))
    lock = threading.Lock()  # openssl ts keeps its serial number in a file

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            authority.requests.append(self.headers.get("Content-Type", ""))
            with lock:
                reply = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(config), "-queryfile", "/dev/stdin", "-out", "-"],
                    input=query,
                    capture_output=True,
                    check=True,
                ).stdout
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    authority.url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield authority
    finally:
        server.shutdown()
        server.server_close()
