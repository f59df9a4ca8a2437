"""What a role's owner lets podid write, read from one tag on the role.

`<tag>=true`: repair breakage of declared usages (principal, actions).
`<tag>=harden`: that, and hardening (aws:SourceAccount, per-usage scoping).
Anything else: nothing. Recommend an SCP so only admins may set the tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

REPAIR_VALUE = "true"
HARDEN_VALUE = "harden"


class Consent(Enum):
    NONE = "none"
    BREAKAGE = "breakage"
    HARDEN = "harden"


def consent_of(tags: Mapping[str, str], tag: str) -> Consent:
    """An empty tag name means the deployment needs no consent for breakage;
    hardening then has no way to be granted, so it stays a proposal."""
    if not tag:
        return Consent.BREAKAGE
    value = tags.get(tag, "").strip().lower()
    if value == HARDEN_VALUE:
        return Consent.HARDEN
    return Consent.BREAKAGE if value == REPAIR_VALUE else Consent.NONE
