"""The reference screens: explain, codes, annotated transcripts and the mailbox."""
