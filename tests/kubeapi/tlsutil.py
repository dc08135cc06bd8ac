"""A throw-away test CA (made with `cryptography`) that issues server certificates for the emulator and
for test webhook servers. One CA per process; keys are ECDSA P-256 so generation is fast."""
from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPair:
    cert_file: str
    key_file: str
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    """Self-signed CA; `issue()` signs server certificates for DNS names and IP addresses."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="kubeapi-ca-")
        atexit.register(shutil.rmtree, self._dir, True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeapi-emulator-test-ca")])
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = os.path.join(self._dir, "ca.crt")
        with open(self.ca_file, "wb") as fh:
            fh.write(self.cert_pem)
        self._count = 0
        self._lock = threading.Lock()

    def issue(self, dns_names: tuple[str, ...] | list[str] = ("localhost",),
              ip_addresses: tuple[str, ...] | list[str] = ("127.0.0.1",)) -> CertPair:
        """A server certificate (and key) for the given names, written to files for `ssl`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        cn = dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses else "server")
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)
        with self._lock:
            self._count += 1
            stem = os.path.join(self._dir, f"server-{self._count}")
        with open(stem + ".crt", "wb") as fh:
            fh.write(cert_pem)
        with open(stem + ".key", "wb") as fh:
            fh.write(key_pem)
        return CertPair(stem + ".crt", stem + ".key", cert_pem, key_pem)

    def server_context(self, pair: CertPair) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert_file, pair.key_file)
        return ctx


_CA: TestCA | None = None
_CA_LOCK = threading.Lock()


def test_ca() -> TestCA:
    """The process-wide test CA (created on first use)."""
    global _CA
    with _CA_LOCK:
        if _CA is None:
            _CA = TestCA()
        return _CA


test_ca.__test__ = False  # type: ignore[attr-defined]
