"""Development and bootstrap certificates: a CA and a serving certificate for the admission Service.

``ensure_certificates`` is idempotent: valid files are kept, a serving certificate that expires
within :data:`RENEW_BEFORE` or no longer covers the requested names is re-issued, and an expiring
CA is replaced together with the serving certificate it signs. Private keys are written 0600,
each file atomically (write to a temporary file, then rename) so a reader never sees half a file.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RENEW_BEFORE = datetime.timedelta(days=30)
CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)
CA_FILE, CERT_FILE, KEY_FILE, CA_KEY_FILE = "ca.crt", "tls.crt", "tls.key", "ca.key"
DEFAULT_SERVICE = "gitjob-webhook-admission"
"""The admission Service whose DNS names the serving certificate covers by default."""


class CertsError(Exception):
    """A certificate file cannot be read or written; the message names it."""


@dataclass(frozen=True)
class CertsResult:
    """What ``ensure_certificates`` did with each file."""

    ca: str          # "created", "kept" or "renewed"
    serving: str
    names: tuple[str, ...]


def service_names(service: str, namespace: str, hosts: Iterable[str] = ()) -> tuple[str, ...]:
    """Every name the serving certificate must cover, in a stable order without duplicates."""
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local", "localhost", "127.0.0.1", *hosts]
    return tuple(dict.fromkeys(name for name in names if name))


def ensure_certificates(out_dir: str, names: Sequence[str],
                        now: datetime.datetime | None = None) -> CertsResult:
    """Create or renew ``ca.crt``/``ca.key`` and ``tls.crt``/``tls.key`` in ``out_dir``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CertsError(f"{out_dir}: is a file, not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise CertsError(f"{out_dir}: cannot create directory: {error.strerror}") from None
    paths = {name: os.path.join(out_dir, name) for name in (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)}

    ca = _load_pair(paths[CA_FILE], paths[CA_KEY_FILE])
    ca_state = "kept"
    if ca is None or ca[0].not_valid_after_utc - now < RENEW_BEFORE:
        ca_state = "renewed" if os.path.exists(paths[CA_FILE]) else "created"
        ca = _issue_ca(now)
        _write(paths[CA_KEY_FILE], _key_pem(ca[1]), private=True)
        _write(paths[CA_FILE], ca[0].public_bytes(serialization.Encoding.PEM))

    serving = _load_pair(paths[CERT_FILE], paths[KEY_FILE])
    serving_state = "kept"
    if ca_state != "kept" or serving is None or not _serving_is_good(serving[0], ca[0], names, now):
        serving_state = "renewed" if os.path.exists(paths[CERT_FILE]) else "created"
        cert, key = _issue_serving(ca, names, now)
        _write(paths[KEY_FILE], _key_pem(key), private=True)
        _write(paths[CERT_FILE], cert.public_bytes(serialization.Encoding.PEM))
    return CertsResult(ca_state, serving_state, tuple(names))


def read_ca(path: str) -> bytes:
    """The PEM bytes of a CA certificate file, checked to be a certificate."""
    try:
        with open(path, "rb") as handle:
            pem = handle.read()
        x509.load_pem_x509_certificate(pem)
    except OSError as error:
        raise CertsError(f"{path}: cannot read: {error.strerror}") from None
    except ValueError:
        raise CertsError(f"{path}: not a PEM certificate") from None
    return pem


def _serving_is_good(cert: x509.Certificate, ca: x509.Certificate, names: Sequence[str],
                     now: datetime.datetime) -> bool:
    if cert.not_valid_after_utc - now < RENEW_BEFORE or cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(names) <= covered


def _issue_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitjob-webhook development CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _issue_serving(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: Sequence[str],
                   now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    ca_cert, ca_key = ca
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + SERVING_VALIDITY, ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _load_pair(cert_path: str, key_path: str) -> tuple[x509.Certificate, Any] | None:
    """A certificate and its key, or None when either is missing, unreadable or they disagree."""
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(key_path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        return None
    return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: str, content: bytes, private: bool = False) -> None:
    directory = os.path.dirname(path) or "."
    temporary = ""
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            os.fchmod(handle, 0o600 if private else 0o644)
            os.write(handle, content)
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, path)
    except OSError as error:
        if temporary and os.path.exists(temporary):
            os.unlink(temporary)
        raise CertsError(f"{path}: cannot write: {error.strerror}") from None
