"""Explaining a session: line annotations, reply explanations, transcripts (stdlib only)."""
