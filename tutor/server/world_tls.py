"""A certificate for the world's submission MTA, smtp.tutor.test, from the tutor's CA.

tlsmaterial makes the CA together with mx.tutor.test's certificate; asked for another
host name whose files are missing, it would make a new CA, and mx.tutor.test's
certificate would no longer chain to the CA learners trust. So the world issues
smtp.tutor.test's files here first, from the existing CA (made if need be), before the
server's process asks tlsmaterial for them (which then finds them complete).
"""

from __future__ import annotations

from pathlib import Path

from tutor.server import tlsmaterial


def ensure_host_certificate(hostname: str, directory: Path | None = None) -> None:
    """Make `hostname`'s certificate (and impostor's) from the existing CA if missing."""
    ca = tlsmaterial.ensure_material(directory=directory)  # the CA and mx.tutor.test
    paths = tlsmaterial.material_paths(hostname, directory)
    if all(p.exists() for p in (paths.cert, paths.key, paths.impostor_cert, paths.impostor_key)):
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_cert = x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = tlsmaterial._server_certificate(hostname, key, ca_cert, ca_key)
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = tlsmaterial._impostor_certificate(hostname, impostor_key)
    write = tlsmaterial._write_atomic
    write(paths.key, tlsmaterial._key_pem(key), mode=0o600)
    write(paths.impostor_key, tlsmaterial._key_pem(impostor_key), mode=0o600)
    write(paths.impostor_cert, tlsmaterial._cert_pem(impostor), mode=0o644)
    write(paths.cert, tlsmaterial._cert_pem(cert), mode=0o644)
