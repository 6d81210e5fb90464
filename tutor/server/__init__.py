"""The teaching SMTP server (aiosmtpd lives only here)."""
