"""Count the functions' AWS calls per place (account, region).

Every client the flows use but the table's comes from
`functions.aws.clients.client` (spoke clients too, made when a place's
credentials first arrive): while `watch` is active each new client gets a
`CallCounter` hook for its place, and so does the table's client at home. The account is
the one moto holds the client's access key under (sandbox.sts_gate.caller_of),
not what the product thinks it is, so a client made with the wrong credentials
is counted where it really calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.call_counter import CallCounter
from functions.aws import clients
from functions.core.places import Place
from sandbox.sts_gate import caller_of

PARTITION = "aws"


class PlaceCounter:
    def __init__(self, home: Place) -> None:
        self.home = home  # where a client made with the environment's credentials calls
        self.counters: dict[Place, CallCounter] = {}
        self._seen: dict[int, Any] = {}  # id -> client (kept, so an id is never reused)

    def place_of(self, client: Any, access: clients.Access | None) -> Place:
        region = client.meta.region_name or self.home.region
        key = access.access_key_id if access is not None else None
        account = self.home.account if key is None else caller_of(key, PARTITION).account
        return Place(account, region)

    def attach(self, client: Any, access: clients.Access | None) -> None:
        if id(client) in self._seen:
            return
        self._seen[id(client)] = client
        place = self.place_of(client, access)
        self.counters.setdefault(place, CallCounter()).attach(client)

    def reset(self) -> dict[Place, Counter[str]]:
        """The calls per place since the last reset."""
        return {place: counter.reset() for place, counter in self.counters.items()}

    @contextmanager
    def watch(self, table: str) -> Iterator[PlaceCounter]:
        """Hook every client made meanwhile, and the table's client at home."""
        original: Callable[..., Any] = clients.client

        def counted(service: str, region: str | None = None, access: Any = None) -> Any:
            made = original(service, region, access)
            self.attach(made, access)
            return made

        clients.client = counted  # observe, never change, the calls
        try:
            self.attach(clients.table(table, self.home.region).meta.client, None)
            yield self
        finally:
            clients.client = original
