"""The personas of the world's MTAs: what each verifies, signs and forwards
(tutor.server.world_mail holds the settings; docs/world.md says what they do)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tutor.server.persona import Persona
from tutor.server.world_mail import FORWARDS, WorldMail
from tutor.world.dkim_keys import FORWARDER_KEY, SUBMISSION_KEY
from tutor.world.dnsdata import Role, WorldHost


def maildir_name(host: WorldHost) -> str:
    """The MTA's Maildir root under the world's: its domain's name, except the submission
    MTA's, which stores only what it relays and must not share mx.tutor.test's root."""
    return host.host if host.role is Role.SUBMISSION else host.domain


def world_persona(
    persona: Persona, host: WorldHost, *, dns: tuple[str, int], port: int, key_dir: Path
) -> Persona:
    """The persona of a world MTA, with what it verifies, signs and forwards."""
    mail = WorldMail(dns=dns, port=port, source=host.address, key_dir=str(key_dir))
    if host.role is Role.SUBMISSION:
        # Relays for authenticated clients only, to every domain, tutor.test included: its
        # own domain is its host name, so no recipient of tutor.test is local to it.
        return replace(
            persona,
            domain=host.host,
            mailboxes=("postmaster",),
            tls=True,
            world=replace(mail, sign=SUBMISSION_KEY),
        )
    if host.role is Role.FORWARDER:
        boxes = tuple(f.mailbox for f in FORWARDS)
        return replace(
            persona,
            mailboxes=(*boxes, "postmaster"),
            world=replace(mail, seal=FORWARDER_KEY, forwards=FORWARDS),
        )
    return replace(persona, world=mail)
