"""The admission server exports its serving certificate's expiry, at start and on every reload."""

from __future__ import annotations

import datetime
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from controller.serving.tls import ReloadingContext

EXPIRY = "gitjob_webhook_tls_certificate_expiry_timestamp_seconds"
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def write_pair(directory: pathlib.Path, days: int) -> datetime.datetime:
    """A self-signed localhost pair valid for ``days``; returns its notAfter."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    not_after = NOW + datetime.timedelta(days=days)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(NOW)
                   .not_valid_after(not_after).sign(key, hashes.SHA256()))
    (directory / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (directory / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return not_after


def test_the_expiry_is_exported_at_start_and_after_a_reload(tmp_path: pathlib.Path) -> None:
    first = write_pair(tmp_path, days=30)
    context = ReloadingContext(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    assert REGISTRY.get_sample_value(EXPIRY) == first.timestamp()

    renewed = write_pair(tmp_path, days=90)
    # Rewritten within one clock tick the files could look unchanged: move the mtime on, as time does.
    os.utime(tmp_path / "tls.crt", ns=(0, os.stat(tmp_path / "tls.crt").st_mtime_ns + 1_000_000))
    context.current()
    assert REGISTRY.get_sample_value(EXPIRY) == renewed.timestamp()
