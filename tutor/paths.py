"""Where smtp-tutor keeps its data: progress, the default Maildir root, TLS material.

SMTP_TUTOR_HOME overrides the platform's data directory (tests always set it).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "SMTP_TUTOR_HOME"


def data_home() -> Path:
    override = os.environ.get(ENV_HOME)
    if override:
        return Path(override).expanduser()
    import platformdirs  # imported lazily: only needed when no override is set

    return Path(platformdirs.user_data_dir("smtp-tutor", appauthor=False))


def default_maildir() -> Path:
    return data_home() / "Maildir"


def tls_dir() -> Path:
    return data_home() / "tls"
