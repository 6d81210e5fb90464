"""smtp-tutor: learn SMTP by talking to a real server, with every reply explained."""

__version__ = "0.1.0"
