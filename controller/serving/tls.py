"""Serving TLS for the admission listener, re-reading rotated certificate files without a restart.

Every handshake goes through one long-lived front context whose ``sni_callback`` hands the
connection the current context. The current context is rebuilt when the certificate or key file
changes (size, mtime or inode), so cert-manager or ``certs`` renewals take effect at the next
handshake while established connections keep the context they started with. Each load exports the
certificate's expiry (``gitjob_webhook_tls_certificate_expiry_timestamp_seconds``).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

from cryptography import x509

from controller.logs import fields

log = logging.getLogger(__name__)


class CertificateError(Exception):
    """The certificate or key cannot be loaded; the message names the file and the problem."""


def _stamp(path: str) -> tuple[int, int, int]:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context with the given certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    # A client that closes its side after a whole request without TLS's close_notify still gets its
    # answer (OpenSSL 3 otherwise fails the connection); requests are framed, so a cut one stays
    # incomplete and is dropped.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as error:
        problem = "key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(error) \
            else f"not a PEM certificate and key ({error.reason or error})"
        raise CertificateError(f"{cert_file} / {key_file}: {problem}") from None
    except OSError as error:
        # load_cert_chain does not always say which file it could not read: find out.
        raise CertificateError(f"{error.filename or _unreadable(cert_file, key_file)}: "
                               f"{(error.strerror or str(error)).lower()}") from None
    return context


def certificate_expiry(cert_file: str) -> float:
    """When the first certificate of a PEM file expires (notAfter), in seconds since the epoch."""
    with open(cert_file, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    return certificate.not_valid_after_utc.timestamp()


def _unreadable(*paths: str) -> str:
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except OSError:
            return path
    return " / ".join(paths)


class ReloadingContext:
    """Hands out the context for the current certificate files, reloading them when they change."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        try:
            self._stamps = (_stamp(cert_file), _stamp(key_file))
        except OSError as error:
            raise CertificateError(f"{error.filename}: {error.strerror}") from None
        self._current = server_context(cert_file, key_file)
        self._last_error = ""
        self._export_expiry()
        self.front = server_context(cert_file, key_file)
        self.front.sni_callback = self._select

    def current(self) -> ssl.SSLContext:
        """The context for the files as they are now; keeps the previous one if they do not load."""
        try:
            stamps = (_stamp(self.cert_file), _stamp(self.key_file))
        except OSError as error:
            self._note_failure(f"{error.filename}: {error.strerror}")
            return self._current
        if stamps == self._stamps:
            return self._current
        with self._lock:
            if stamps != self._stamps:
                try:
                    self._current = server_context(self.cert_file, self.key_file)
                except CertificateError as error:
                    # Half-written files during a rotation: keep serving the old pair, retry next time.
                    self._note_failure(str(error))
                    return self._current
                self._stamps = stamps
                self._last_error = ""
                self._export_expiry()
                log.info("serving certificate reloaded", extra=fields(cert=self.cert_file))
        return self._current

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                context: ssl.SSLContext) -> None:
        connection.context = self.current()

    def _export_expiry(self) -> None:
        # Imported here, not at the top: prometheus-client picks its storage when first imported,
        # and `serve` prepares that (controller.serving.gunicorn) only after importing this module.
        from controller import metrics
        try:
            metrics.TLS_CERTIFICATE_EXPIRY.set(certificate_expiry(self.cert_file))
        except (OSError, ValueError) as error:
            # The pair loaded, so this is a file replaced in between: the next reload exports it.
            log.warning("serving certificate expiry not read", extra=fields(cert=self.cert_file,
                                                                            error=str(error)))

    def _note_failure(self, message: str) -> None:
        if message != self._last_error:
            log.warning("serving certificate not reloaded", extra=fields(error=message))
        self._last_error = message
