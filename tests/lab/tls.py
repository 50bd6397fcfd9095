"""A private CA and a relay certificate signed by it, made with `openssl req` for one test."""

import subprocess
from pathlib import Path
from typing import NamedTuple

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]


class RelayCertificate(NamedTuple):
    ca: Path  # the CA's certificate: what SMTP_CA_FILE names
    cert: Path  # the relay's certificate, for the addresses given
    key: Path


def make_relay_certificate(folder: Path, *addresses: str) -> RelayCertificate:
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key = folder / "relay.pem", folder / "relay.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            *_KEY,
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-subj",
            "/CN=portwarden test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        check=True,
        capture_output=True,
    )
    names = ",".join(f"IP:{address}" for address in addresses)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            *_KEY,
            "-keyout",
            key,
            "-out",
            cert,
            "-subj",
            "/CN=relay",
            "-addext",
            f"subjectAltName={names}",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )
    return RelayCertificate(ca, cert, key)
