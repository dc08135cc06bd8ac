"""Development certificates: the names they cover, their validity, renewal and key permissions."""

from __future__ import annotations

import datetime
import ipaddress
import os
import pathlib
import stat

import pytest
from cryptography import x509

from controller.certs import issue as certs

NAMES = certs.service_names("gitjob-webhook-admission", "cattle-fleet-system", ["webhook.example.com"])
NOW = datetime.datetime(2026, 11, 29, tzinfo=datetime.timezone.utc)


def _load(path: pathlib.Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))}


def test_the_serving_certificate_covers_every_service_name_localhost_and_extra_hosts(
    tmp_path: pathlib.Path
) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    assert _sans(_load(tmp_path / "tls.crt")) == {
        "gitjob-webhook-admission",
        "gitjob-webhook-admission.cattle-fleet-system",
        "gitjob-webhook-admission.cattle-fleet-system.svc",
        "gitjob-webhook-admission.cattle-fleet-system.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        "webhook.example.com",
    }


def test_an_ip_host_becomes_an_ip_address_san(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), certs.service_names("svc", "ns", ["10.0.0.7"]), NOW)
    san = _load(tmp_path / "tls.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.0.0.7") in san.get_values_for_type(x509.IPAddress)


def test_the_serving_certificate_is_signed_by_the_ca_and_is_not_a_ca(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    ca, serving = _load(tmp_path / "ca.crt"), _load(tmp_path / "tls.crt")
    serving.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_certificates_are_valid_now_for_a_year_and_ten_years(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    ca, serving = _load(tmp_path / "ca.crt"), _load(tmp_path / "tls.crt")
    assert serving.not_valid_before_utc <= NOW < serving.not_valid_after_utc
    assert serving.not_valid_after_utc - NOW == certs.SERVING_VALIDITY
    assert ca.not_valid_after_utc - NOW == certs.CA_VALIDITY


def test_private_keys_are_readable_by_the_owner_only(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    for name in ("tls.key", "ca.key"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "tls.crt").st_mode) == 0o644


def test_rerunning_keeps_valid_certificates(tmp_path: pathlib.Path) -> None:
    first = certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    before = (tmp_path / "tls.crt").read_bytes(), (tmp_path / "ca.crt").read_bytes()
    second = certs.ensure_certificates(str(tmp_path), NAMES, NOW + datetime.timedelta(days=100))
    assert (first.ca, first.serving) == ("created", "created")
    assert (second.ca, second.serving) == ("kept", "kept")
    assert ((tmp_path / "tls.crt").read_bytes(), (tmp_path / "ca.crt").read_bytes()) == before


def test_a_serving_certificate_expiring_within_30_days_is_renewed_with_the_same_ca(
    tmp_path: pathlib.Path
) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    result = certs.ensure_certificates(str(tmp_path), NAMES, NOW + datetime.timedelta(days=340))
    assert (result.ca, result.serving) == ("kept", "renewed")
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    assert _load(tmp_path / "tls.crt").not_valid_after_utc > NOW + datetime.timedelta(days=400)


def test_a_ca_expiring_within_30_days_is_replaced_together_with_the_serving_certificate(
    tmp_path: pathlib.Path
) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    result = certs.ensure_certificates(str(tmp_path), NAMES, NOW + datetime.timedelta(days=3640))
    assert (result.ca, result.serving) == ("renewed", "renewed")
    _load(tmp_path / "tls.crt").verify_directly_issued_by(_load(tmp_path / "ca.crt"))


def test_a_new_host_reissues_the_serving_certificate(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    result = certs.ensure_certificates(str(tmp_path), (*NAMES, "other.example.com"), NOW)
    assert result.serving == "renewed"
    assert "other.example.com" in _sans(_load(tmp_path / "tls.crt"))


def test_a_key_that_does_not_match_its_certificate_is_replaced(tmp_path: pathlib.Path) -> None:
    certs.ensure_certificates(str(tmp_path), NAMES, NOW)
    (tmp_path / "tls.key").write_bytes((tmp_path / "ca.key").read_bytes())
    assert certs.ensure_certificates(str(tmp_path), NAMES, NOW).serving == "renewed"


def test_an_unwritable_directory_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(certs.CertsError, match="cannot create directory"):
        certs.ensure_certificates(str(blocker / "sub"), NAMES, NOW)


def test_a_file_given_as_the_directory_is_named_as_such(tmp_path: pathlib.Path) -> None:
    (tmp_path / "README.md").write_text("a file")
    with pytest.raises(certs.CertsError, match="README.md: is a file, not a directory"):
        certs.ensure_certificates(str(tmp_path / "README.md"), NAMES, NOW)


def test_reading_a_file_that_is_not_a_certificate_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "ca.crt").write_text("hello")
    with pytest.raises(certs.CertsError, match="not a PEM certificate"):
        certs.read_ca(str(tmp_path / "ca.crt"))
