"""Spokes announce themselves: a heartbeat from a spoke account and region
records it, and a spoke seen for the first time (or back after being
unreachable) has its clusters discovered at once, so an account joins by
deploying the spoke with zero edits in the hub.

Only EventBridge itself sends events from source aws.events (PutEvents refuses
"aws." sources) and the hub's bus admits only the organization's accounts, so
a heartbeat's account and region are the spoke's own."""

from __future__ import annotations

from datetime import datetime

from functions.core.models import Spoke, SpokeState
from functions.core.places import Place
from functions.dal.repository import StaleWrite
from functions.events import ClusterMessage
from functions.flows.discovery import Discovery, discover
from functions.flows.reconcile import request_reconcile
from functions.flows.services import Services
from functions.observability import logger, metrics


def on_heartbeat(svc: Services, place: Place, seen_at: datetime) -> Discovery | None:
    """Record the spoke; discover its clusters when it is new or was unreachable
    (None when nothing needed discovering)."""
    spoke = svc.repo.get_spoke(place)
    fresh = spoke is None or spoke.state is SpokeState.UNREACHABLE
    updated = spoke or Spoke(account=place.account, region=place.region, seen_at=seen_at)
    updated = updated.model_copy(update={"seen_at": max(seen_at, updated.seen_at)})
    try:
        svc.repo.save_spoke(updated)
    except StaleWrite:
        return None  # another heartbeat of this spoke was recorded just now
    if not fresh:
        return None
    if svc.spokes is not None:
        svc.spokes.forget_refusal(place)  # it answers again: ask afresh
    logger.info("spoke announced itself", place=str(place), known=spoke is not None)
    metrics.add_metric(name="SpokesJoined", unit="Count", value=1)
    declarations = svc.repo.load_declarations()
    clusters, found = discover(svc, declarations.valid, only=place)
    due = [c.ref for c in clusters if c.enrolled and c.place == place]
    request_reconcile(svc, (ClusterMessage(cluster=str(ref), reason="spoke joined") for ref in due))
    return found
