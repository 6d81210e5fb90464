"""SMTP itself, standard library only: wire format, codes, envelopes, headers, state."""
