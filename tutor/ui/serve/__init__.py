"""The serve screens: the teaching server's line log, dashboard and saved transcripts."""
