"""Mutual TLS material for the Apache Kafka node (:mod:`shared.messaging.apache_kafka`), as
the federation's CA would issue it."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class KafkaTls:
    """A CA, the broker's certificate and client certificates by CN, as PEM files under
    ``folder``. A client's principal is ``User:<CN>`` (``deploy/README.md``)."""

    folder: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    SUPER_USERS = ("broker", "federation-admin")

    @classmethod
    def create(cls, folder: Path, client_cns: Iterable[str] = ()) -> KafkaTls:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name("vardkedja test federation CA"))
            .issuer_name(name("vardkedja test federation CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))

        def issue(cn: str, *, server: bool) -> tuple[bytes, bytes]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(cn))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(
                    x509.ExtendedKeyUsage(
                        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                        if server
                        else [ExtendedKeyUsageOID.CLIENT_AUTH]
                    ),
                    critical=False,
                )
            )
            if server:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        ]
                    ),
                    critical=False,
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            key_pem = key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return key_pem, cert.public_bytes(pem)

        # The broker's key store: its key, then its certificate (Kafka's PEM key store).
        key_pem, cert_pem = issue("broker", server=True)
        (folder / "broker.pem").write_bytes(key_pem + cert_pem)
        (folder / "broker.pem").chmod(0o600)
        tls = cls(folder)
        for cn in {"federation-admin", *client_cns}:
            key_pem, cert_pem = issue(cn, server=False)
            (folder / f"{cn}.key").write_bytes(key_pem)
            (folder / f"{cn}.key").chmod(0o600)
            (folder / f"{cn}.crt").write_bytes(cert_pem)
            (folder / f"{cn}.pem").write_bytes(key_pem + cert_pem)
            tls.clients[cn] = (folder / f"{cn}.crt", folder / f"{cn}.key")
        (folder / "admin.properties").write_text(
            "security.protocol=SSL\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={folder / 'federation-admin.pem'}\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={folder / 'ca.pem'}\n"
        )
        return tls

    @property
    def cafile(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def admin_properties(self) -> Path:
        """A client properties file for Kafka's tools as the super user ``federation-admin``
        (the deploy scripts' ``COMMAND_CONFIG``)."""
        return self.folder / "admin.properties"

    def client_settings(self, cn: str) -> dict[str, str]:
        """``KafkaSettings`` fields for a client with the certificate of ``cn``."""
        cert, key = self.clients[cn]
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(self.cafile),
            "ssl_certfile": str(cert),
            "ssl_keyfile": str(key),
        }

    def client_env(self, cn: str) -> dict[str, str]:
        """The same as ``VK_KAFKA__*`` environment variables."""
        return {f"VK_KAFKA__{k.upper()}": v for k, v in self.client_settings(cn).items()}
