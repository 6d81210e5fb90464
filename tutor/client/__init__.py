"""The tutor as an SMTP client: connections, TLS facts, wire dumps, the MITM demo."""
