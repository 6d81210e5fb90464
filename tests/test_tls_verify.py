"""Certificate verification taught for real: the local CA, openssl, the man in the middle.

RFC 8314 §5.3 and RFC 7817: a mail client MUST verify the server's certificate. The
teaching server's certificate is signed by a local CA made once per data home; the
tutor's own client, Python's ssl and openssl's s_client all verify it against that CA
file, and all of them refuse the impostor's certificate that tutor/client/mitm.py presents.
"""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.support import require_tool, run_cli
from tutor.client.client import SmtpClient, SmtpTlsError
from tutor.client.mitm import MiddleProxy
from tutor.server.runner import TeachingServer
from tutor.server.tlsmaterial import (
    CA_NAME,
    ensure_certificate,
    ensure_material,
    material_paths,
    server_context,
)

WAIT = 10.0


def ehlo_starttls(address: tuple[str, int]) -> SmtpClient:
    client = SmtpClient.connect(*address, timeout=WAIT)
    assert client.send_line("EHLO client.example").code == 250
    assert client.send_line("STARTTLS").code == 220
    return client


def s_client(address: tuple[str, int], ca_file: Path) -> subprocess.CompletedProcess[str]:
    """The command lesson 11 and docs/sandbox.md give the learner, with QUIT on stdin."""
    openssl = require_tool("openssl")
    host, port = address
    return subprocess.run(
        [
            openssl,
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            f"{host}:{port}",
            "-CAfile",
            str(ca_file),
            "-verify_return_error",
            "-servername",
            "mx.tutor.test",
            "-verify_hostname",
            "mx.tutor.test",
            "-brief",
            "-crlf",
        ],
        input="QUIT\n",
        capture_output=True,
        text=True,
        timeout=30,
    )


# --- the material -------------------------------------------------------------------------


def test_the_ca_is_constrained_and_signs_the_server_certificate(tls_dir: Path) -> None:
    paths = ensure_material("mx.tutor.test", tls_dir)
    ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == CA_NAME
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    permitted = constraints.permitted_subtrees or []
    assert x509.DNSName("tutor.test") in permitted
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.tutor.test"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    impostor = x509.load_pem_x509_certificate(paths.impostor_cert.read_bytes())
    assert impostor.issuer == impostor.subject  # self-signed, not by the CA
    assert impostor.public_key() != cert.public_key()


def test_keys_are_private_and_the_material_is_made_once(tmp_path: Path) -> None:
    first = ensure_material("mx.tutor.test", tmp_path / "tls")
    for key in (first.ca_key, first.key, first.impostor_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(first.ca_file.stat().st_mode) == 0o644
    before = first.ca_file.read_bytes(), first.cert.read_bytes()
    again = ensure_material("mx.tutor.test", tmp_path / "tls")
    assert (again.ca_file.read_bytes(), again.cert.read_bytes()) == before


def test_old_self_signed_material_is_replaced_cleanly(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    made = ensure_material("mx.tutor.test", directory)
    # What an older smtp-tutor left behind: a self-signed server certificate, no CA.
    made.cert.write_bytes(made.impostor_cert.read_bytes())
    made.key.write_bytes(made.impostor_key.read_bytes())
    for path in (made.ca_file, made.ca_key, made.impostor_cert, made.impostor_key):
        path.unlink()
    cert_path, key_path = ensure_certificate("mx.tutor.test", directory)
    paths = material_paths("mx.tutor.test", directory)
    ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
    x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(ca)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not list(directory.glob("*.tmp"))


def test_unchanged_material_is_not_parsed_again_and_a_swapped_one_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutor.server import tlsmaterial

    directory = tmp_path / "tls"
    made = ensure_material("mx.tutor.test", directory)
    ensure_material("mx.tutor.test", directory)  # checked once, stamped
    checks: list[Path] = []
    real_check = tlsmaterial._issued_by_our_ca
    monkeypatch.setattr(
        tlsmaterial,
        "_issued_by_our_ca",
        lambda paths: checks.append(paths.cert) or real_check(paths),
    )
    ensure_material("mx.tutor.test", directory)
    assert checks == []  # the stamp says the files are the ones checked
    made.cert.write_bytes(made.impostor_cert.read_bytes())  # not issued by our CA
    ensure_material("mx.tutor.test", directory)
    assert checks  # checked again, found wrong, made anew
    ca = x509.load_pem_x509_certificate(made.ca_file.read_bytes())
    x509.load_pem_x509_certificate(made.cert.read_bytes()).verify_directly_issued_by(ca)


# --- verifying for real ----------------------------------------------------------------------


def test_pythons_ssl_verifies_the_server_against_the_ca_file(
    server: TeachingServer, tls_dir: Path
) -> None:
    ca_file = ensure_material("mx.tutor.test", tls_dir).ca_file
    context = ssl.create_default_context(cafile=str(ca_file))
    with ehlo_starttls(server.address) as client:
        info = client.starttls(context, "mx.tutor.test")
        assert info.verified
        assert client.send_line("EHLO client.example").code == 250
    # The name is checked too: the same certificate is no good for another host.
    with (
        ehlo_starttls(server.address) as client,
        pytest.raises(SmtpTlsError, match=r"Hostname mismatch|doesn't match"),
    ):
        client.starttls(context, "mx.elsewhere.example")


def test_the_tutors_client_says_verified_and_names_the_ca(
    server: TeachingServer, tls_dir: Path
) -> None:
    ca_file = ensure_material("mx.tutor.test", tls_dir).ca_file
    with ehlo_starttls(server.address) as client:
        info = client.starttls(cafile=ca_file)
    assert info.verified and info.verify_error is None and info.ca_file == str(ca_file)


def test_openssl_s_client_verifies_the_teaching_server(
    server: TeachingServer, tls_dir: Path
) -> None:
    result = s_client(server.address, ensure_material("mx.tutor.test", tls_dir).ca_file)
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stderr
    assert "Verified peername: mx.tutor.test" in result.stderr


# --- the man in the middle -------------------------------------------------------------------


def test_the_middle_is_refused_by_every_client_that_verifies(
    server: TeachingServer, tls_dir: Path
) -> None:
    ca_file = ensure_material("mx.tutor.test", tls_dir).ca_file
    impostor = server_context("mx.tutor.test", tls_dir, impostor=True)
    with MiddleProxy(server.address, impostor, timeout=WAIT) as middle:
        assert middle.address[0] == "127.0.0.1"
        with pytest.raises(SmtpTlsError, match="certificate verify failed: self-signed"):
            ehlo_starttls(middle.address).starttls(cafile=ca_file)
        refused = s_client(middle.address, ca_file)
        assert refused.returncode != 0
        assert "self-signed certificate" in refused.stderr
        assert "certificate verify failed" in refused.stderr
        with ehlo_starttls(middle.address) as client:  # one that does not check
            info = client.starttls(verify=False)
            assert not info.verified
            assert client.send_line("NOOP").code == 250
    assert middle.log.read_in_tls == ["NOOP"]  # decrypted and read in the middle
    assert len(middle.log.refused) == 2


def test_the_middle_listens_on_loopback_only(server: TeachingServer, tls_dir: Path) -> None:
    impostor = server_context("mx.tutor.test", tls_dir, impostor=True)
    with MiddleProxy(server.address, impostor, timeout=WAIT) as middle:
        listening = socket.create_connection(middle.address, timeout=WAIT)
        listening.close()
        assert middle.address[0] == "127.0.0.1"


def test_mitm_in_the_sandbox_shows_the_refusal_and_the_stolen_password() -> None:
    result = run_cli("sandbox", "--script", "-", "--plain", stdin="/mitm\n/quit\n")
    assert result.returncode == 0, result.stdout + result.stderr
    flat = " ".join(result.stdout.split())
    assert "== A man in the middle (/mitm) ==" in flat
    assert "O=an attacker in the middle (smtp-tutor demonstration)" in flat
    assert (
        "refused: the server's certificate did not verify "
        "(certificate verify failed: self-signed certificate)" in flat
    )
    assert "C: AUTH PLAIN AHlvdQB0dXRvci1wYXNzd29yZA== S: 235 2.7.0" in flat
    assert "The password, decoded by the middle: you / tutor-password" in flat
    assert "-CAfile" in flat and "smtp-tutor-ca.pem -verify_return_error" in flat


def test_mitm_needs_the_built_in_server(server: TeachingServer) -> None:
    host, port = server.address
    result = run_cli(
        "sandbox", "--connect", f"{host}:{port}", "--script", "-", "--plain", stdin="/mitm\n"
    )
    assert "/mitm works with the built-in server only" in " ".join(result.stdout.split())


# --- what the lessons show -------------------------------------------------------------------

VERIFIED = "Verified: the certificate for mx.tutor.test was signed by the smtp-tutor local CA"


def test_lesson_10_shows_the_verified_certificate(tutor_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "lesson.txt"
    script.write_text("helo client.example\n5\nstarttls\nehlo client.example\nstarttls\n")
    result = run_cli("learn", "starttls", "--script", str(script), "--plain")
    flat = " ".join(result.stdout.split())
    assert "verified yes" in flat and VERIFIED in flat
    assert str(tutor_home / "tls" / "smtp-tutor-ca.pem") in flat


def test_lesson_11_logs_in_only_after_a_verified_handshake(
    tutor_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "lesson.txt"
    script.write_text(
        "ehlo client.example\n5\nauth plain AHlvdQB0dXRvci1wYXNzd29yZA==\n"
        "starttls\nehlo client.example\n"
    )
    result = run_cli("learn", "auth-submission", "--script", str(script), "--plain")
    flat = " ".join(result.stdout.split())
    assert "verified yes" in flat and VERIFIED in flat


def test_sandbox_connect_verifies_another_server_against_cafile(
    server: TeachingServer, tls_dir: Path
) -> None:
    ca_file = ensure_material("mx.tutor.test", tls_dir).ca_file
    host, port = server.address
    lines = "ehlo a.b.c\nstarttls\nquit\n"
    trusted = run_cli(
        "sandbox", "--connect", f"{host}:{port}", "--cafile", str(ca_file), "--plain", stdin=lines
    )
    assert "Verified: the certificate for" in trusted.stdout
    unknown_ca = run_cli("sandbox", "--connect", f"{host}:{port}", "--plain", stdin=lines)
    assert "did not verify" in unknown_ca.stdout  # the system's store knows no tutor CA
    missing = run_cli("sandbox", "--connect", f"{host}:{port}", "--cafile", "/nonexistent.pem")
    assert missing.returncode == 1 and "--cafile /nonexistent.pem: no such file" in missing.stderr
