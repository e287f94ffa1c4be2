"""TLS for real: the emulator serves HTTPS with a certificate made here, signed by a CA made here.

Verification is on by default (the self-signed chain is refused, naming certificate
verification), a CA bundle path in ``verify_ssl`` makes the same server trusted, and turning
verification off warns once per process.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.hooks import client as client_module
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import DataMasqueTransportError

from ._support import CONN_ENV


def _write_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DataMasque test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _write_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_emulator(certificates: tuple[Path, Path, Path]) -> Iterator[DataMasqueEmulator]:
    _, cert_path, key_path = certificates
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    with DataMasqueEmulator(run_seconds=1.0, ssl_context=context) as emu:
        yield emu


def _hook(monkeypatch: pytest.MonkeyPatch, emu: DataMasqueEmulator, **extra: Any) -> DataMasqueHook:
    import certifi

    # Many hosts set this; requests lets it override a session's own verify setting.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    conn = json.loads(emu.connection_json())
    conn["extra"] = json.dumps({"max_retries": 0, **extra})
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    return DataMasqueHook()


@pytest.mark.integration
def test_emulator_serves_https(https_emulator: DataMasqueEmulator) -> None:
    assert https_emulator.url.startswith("https://127.0.0.1:")


@pytest.mark.integration
def test_ca_bundle_path_verifies_the_server(
    https_emulator: DataMasqueEmulator, certificates: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_path, _, _ = certificates
    hook = _hook(monkeypatch, https_emulator, verify_ssl=str(ca_path))
    try:
        assert hook.get_current_user()["username"] == https_emulator.username
    finally:
        hook.close()
    assert https_emulator.count_requests("GET", r"/api/users/me/") == 1


@pytest.mark.integration
def test_verification_is_on_by_default_and_names_the_certificate(
    https_emulator: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook(monkeypatch, https_emulator, max_retries=3)
    try:
        with pytest.raises(DataMasqueTransportError) as caught:
            hook.get_current_user()
    finally:
        hook.close()
    message = str(caught.value)
    assert "certificate verif" in message.lower(), message
    assert "verify_ssl" in message, message
    assert https_emulator.count_requests("GET", r"/api/users/me/") == 0  # refused before any request
    assert https_emulator.connections_accepted == 1, "a failed certificate check is not retried"
    assert https_emulator.password not in message


@pytest.mark.integration
def test_verification_off_warns_once(
    https_emulator: DataMasqueEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(client_module, "_insecure_warned", False)
    caplog.set_level(logging.WARNING, logger=client_module.log.name)
    hooks = [_hook(monkeypatch, https_emulator, verify_ssl="false") for _ in range(3)]
    try:
        for hook in hooks:  # unverified, but it works
            assert hook.get_current_user()["username"] == https_emulator.username
    finally:
        for hook in hooks:
            hook.close()
    warnings = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert https_emulator.url in warnings[0]
