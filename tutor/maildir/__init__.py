"""Reading delivered mail from a maildir for the mailbox views."""
