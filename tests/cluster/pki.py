"""Keys and certificates of a test control plane: a CA, serving certificates, the ServiceAccount key
pair and the admin token file."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# P-256 everywhere: generating it takes microseconds, RSA-2048 tens of milliseconds.
_CURVE = ec.SECP256R1()
ADMIN_USER = "admin"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class Authority:
    """A test CA that issues serving certificates."""

    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "gitjob-webhook test CA") -> Authority:
        """A new self-signed CA, valid for a day."""
        key = ec.generate_private_key(_CURVE)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(cert.public_bytes(serialization.Encoding.PEM), key)

    def issue(self, names: Sequence[str]) -> tuple[bytes, bytes]:
        """A serving certificate (PEM) and its key (PEM) for DNS names and IP addresses."""
        key = ec.generate_private_key(_CURVE)
        ca_cert = x509.load_pem_x509_certificate(self.cert_pem)
        alternative: list[x509.GeneralName] = []
        for name in names:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def write(self, directory: pathlib.Path, stem: str,
              names: Sequence[str]) -> tuple[pathlib.Path, pathlib.Path]:
        """Issue a certificate for ``names`` into ``directory/stem.crt`` and ``stem.key``."""
        cert_pem, key_pem = self.issue(names)
        cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        return cert_file, key_file


@dataclass(frozen=True)
class ControlPlanePki:
    """Files the API server reads, and the admin credentials."""

    authority: Authority
    ca_file: pathlib.Path
    serving_cert: pathlib.Path
    serving_key: pathlib.Path
    service_account_key: pathlib.Path
    service_account_public_key: pathlib.Path
    token_file: pathlib.Path
    admin_token: str


def create(directory: pathlib.Path) -> ControlPlanePki:
    """A CA, the API server's serving certificate for loopback, the key that signs ServiceAccount
    tokens, and a token file whose only user is an admin in ``system:masters``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = Authority.create()
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(authority.cert_pem)
    serving_cert, serving_key = authority.write(
        directory, "apiserver", ["localhost", "127.0.0.1", "kubernetes", "kubernetes.default.svc"])
    signing = ec.generate_private_key(_CURVE)
    service_account_key = directory / "sa.key"
    service_account_key.write_bytes(_key_pem(signing))
    service_account_public_key = directory / "sa.pub"
    service_account_public_key.write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    admin_token = secrets.token_urlsafe(24)
    token_file = directory / "tokens.csv"
    token_file.write_text(f'{admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    token_file.chmod(0o600)
    return ControlPlanePki(authority, ca_file, serving_cert, serving_key, service_account_key,
                           service_account_public_key, token_file, admin_token)
