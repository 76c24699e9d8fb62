"""The key and certificate chain that sign faces' C2PA manifests, and the CA that verification trusts.

C2PA wants a chain, not a lone self-signed certificate: a CA (``ca=True``, keyCertSign) and an ES256 leaf
(digitalSignature, extended key usage emailProtection, AKI/SKI). Three PEM files in one folder
(:class:`ProvenanceConfig.credentials_dir`): ``signer-chain.pem`` (leaf then CA), ``signer-key.pem`` (the leaf's
PKCS#8 key) and ``trust-anchor.pem`` (the CA, which ``facegen verify`` trusts). Locally ``facegen provenance init``
makes a throwaway CA and leaf there once (the CA's key is not kept: renewing makes a new CA); in Kubernetes the
Secret ``facegen-provenance`` is mounted as that folder.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field

from facegen.paths import facegen_home

CHAIN_FILE = "signer-chain.pem"
KEY_FILE = "signer-key.pem"
TRUST_ANCHOR_FILE = "trust-anchor.pem"
#: Lifetime of the leaf ``facegen provenance init`` makes; the throwaway CA lives ten times as long.
LOCAL_LEAF_DAYS = 365
ORGANIZATION = "facegen"
TIMESTAMP_URL_ENV = "FACEGEN_TIMESTAMP_URL"


class ProvenanceConfig(BaseModel):
    """The ``provenance`` block of the service settings (``configs/serve.yaml``); exports read the same block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # false: faces leave unsigned and unwatermarked (logged loudly at start-up)
    credentials_dir: Path | None = None  # None: $FACEGEN_HOME/provenance (made by `facegen provenance init`)
    #: RFC 3161 time-stamp authority: each manifest then carries a signing time a TSA vouches for, so it stays valid
    #: after the leaf certificate expires. Default from $FACEGEN_TIMESTAMP_URL, which reaches the service and the
    #: pipeline's steps alike (Kubernetes: the facegen-env ConfigMap); unset: no time-stamp, the signer's clock only.
    timestamp_url: str | None = Field(default_factory=lambda: os.environ.get(TIMESTAMP_URL_ENV) or None)

    def resolved_credentials_dir(self) -> Path:
        return Path(self.credentials_dir) if self.credentials_dir else facegen_home() / "provenance"

    def trust_anchor_path(self) -> Path:
        return self.resolved_credentials_dir() / TRUST_ANCHOR_FILE


class CredentialsError(ValueError):
    """The signing credentials are missing, unreadable, expired or do not belong together."""


@dataclass(frozen=True)
class SigningCredentials:
    """A PEM chain (leaf first) and the leaf's private key, checked to belong together.

    ``chain_pem`` is what goes into each manifest: the chain without its self-signed root, which verifiers hold as
    their trust anchor anyway (C2PA's x5chain needs the leaf and any intermediates); leaving it out saves ~420 bytes
    a face.
    """

    chain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate

    @classmethod
    def load(cls, directory: Path) -> SigningCredentials:
        """Read and check the chain and key in ``directory``; :class:`CredentialsError` says what is wrong."""
        paths = {name: Path(directory) / name for name in (CHAIN_FILE, KEY_FILE)}
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            raise CredentialsError(
                f"signing credentials missing: {', '.join(missing)} (run `facegen provenance init` locally; in "
                "Kubernetes mount the facegen-provenance Secret)"
            )
        chain_pem, key_pem = paths[CHAIN_FILE].read_bytes(), paths[KEY_FILE].read_bytes()
        try:
            certificates = x509.load_pem_x509_certificates(chain_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as error:
            raise CredentialsError(f"unreadable signing credentials in {directory}: {error}") from error
        leaf = certificates[0]
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise CredentialsError(f"{paths[KEY_FILE]} must be a P-256 (ES256) key, got {type(key).__name__}")
        if key.public_key() != leaf.public_key():
            raise CredentialsError(f"{paths[KEY_FILE]} is not the key of the first certificate in {paths[CHAIN_FILE]}")
        if len(certificates) < 2:
            raise CredentialsError(f"{paths[CHAIN_FILE]} holds one certificate; C2PA needs the leaf and its CA")
        try:
            leaf.verify_directly_issued_by(certificates[1])
        except (ValueError, TypeError, InvalidSignature) as error:
            raise CredentialsError(f"{paths[CHAIN_FILE]}: the second certificate did not issue the first") from error
        embedded = [cert for cert in certificates if cert.subject != cert.issuer] or [leaf]
        return cls(b"".join(_pem(cert) for cert in embedded), key_pem, leaf)

    def problem(self, now: dt.datetime | None = None) -> str | None:
        """Why the leaf cannot sign now (expired or not yet valid), else None."""
        now = now or dt.datetime.now(dt.timezone.utc)
        subject = self.leaf.subject.rfc4514_string()
        if now >= self.leaf.not_valid_after_utc:
            return f"signing certificate {subject} expired at {self.leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        if now < self.leaf.not_valid_before_utc:
            return (
                f"signing certificate {subject} is valid only from {self.leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        return None


def signing_problem(config: ProvenanceConfig) -> str | None:
    """Why faces cannot be marked under ``config`` (missing, bad or expired credentials), else None.

    None as well when marking is switched off: then nothing needs signing.
    """
    if not config.enabled:
        return None
    try:
        return SigningCredentials.load(config.resolved_credentials_dir()).problem()
    except CredentialsError as error:
        return str(error)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )


def key_usage(*, sign: bool) -> x509.KeyUsage:
    """Key usage of a signing leaf (``sign``: digitalSignature) or of the CA that issues it (keyCertSign, cRLSign)."""
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_local_credentials(
    directory: Path,
    *,
    common_name: str = "facegen local",
    valid_from: dt.datetime | None = None,
    leaf_days: int = LOCAL_LEAF_DAYS,
) -> Path:
    """Make a throwaway CA and an ES256 leaf it issued, write the three PEM files into ``directory``; return it.

    ``valid_from`` (default: now) and ``leaf_days`` set the leaf's validity window (tests make expired leaves).
    """
    start = valid_from or dt.datetime.now(dt.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{common_name} CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=10 * leaf_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{common_name} signer"))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / KEY_FILE
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)  # before the key is in it, also when the file was there already
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (directory / CHAIN_FILE).write_bytes(_pem(leaf) + _pem(ca))
    (directory / TRUST_ANCHOR_FILE).write_bytes(_pem(ca))
    return directory
