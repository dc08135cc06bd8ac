"""The admission listener picks up rotated certificate files at the next handshake, no restart."""

from __future__ import annotations

import pathlib
import shutil
import socket
import ssl
from collections.abc import Callable

from cryptography import x509

from controller.certs import issue as certs
from support import service
from support.waiting import wait_for


def _presented_certificate(port: int) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only read what the server presents
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None  # None only before the handshake
            return x509.load_der_x509_certificate(der)


def test_rotated_files_are_presented_at_the_next_handshake(
    start_admission: Callable[..., service.Service], tmp_path: pathlib.Path
) -> None:
    live, rotated = tmp_path / "live", tmp_path / "rotated"
    names = certs.service_names("gitjob-webhook-admission", "cattle-fleet-system")
    certs.ensure_certificates(str(live), names)
    certs.ensure_certificates(str(rotated), names)   # another CA, another serving certificate
    started = start_admission("--tls-cert", str(live / "tls.crt"), "--tls-key", str(live / "tls.key"),
                              ca_file=str(live / "ca.crt"))
    port = int(started.admission.rsplit(":", 1)[1])
    before = _presented_certificate(port)
    expected = x509.load_pem_x509_certificate((rotated / "tls.crt").read_bytes())
    assert before.serial_number != expected.serial_number

    # As a Secret volume update does it: new files swapped in, the process keeps running.
    shutil.copy(rotated / "tls.key", live / "tls.key.new")
    shutil.copy(rotated / "tls.crt", live / "tls.crt.new")
    (live / "tls.key.new").replace(live / "tls.key")
    (live / "tls.crt.new").replace(live / "tls.crt")

    def rotated_certificate() -> x509.Certificate | None:
        presented = _presented_certificate(port)
        return presented if presented.serial_number == expected.serial_number else None

    after = wait_for(rotated_certificate, message="the rotated certificate")
    assert after.serial_number == expected.serial_number
    assert started.process.poll() is None
    assert "serving certificate reloaded" in started.log()


def test_a_half_rotated_pair_keeps_serving_the_old_certificate(
    start_admission: Callable[..., service.Service], tmp_path: pathlib.Path
) -> None:
    live, other = tmp_path / "live", tmp_path / "other"
    names = certs.service_names("gitjob-webhook-admission", "cattle-fleet-system")
    certs.ensure_certificates(str(live), names)
    certs.ensure_certificates(str(other), names)
    started = start_admission("--store", "offline", "--tls-cert", str(live / "tls.crt"),
                              "--tls-key", str(live / "tls.key"), ca_file=str(live / "ca.crt"))
    port = int(started.admission.rsplit(":", 1)[1])
    original = _presented_certificate(port).serial_number

    shutil.copy(other / "tls.crt", live / "tls.crt")   # the key has not arrived yet

    assert _presented_certificate(port).serial_number == original
    wait_for(lambda: "serving certificate not reloaded" in started.log(), message="the warning")
