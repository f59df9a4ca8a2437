"""AWS Organizations adapter: the OU path of an account, for target.organizationalUnits.

An account's OU rarely changes, so each answer is kept for this container's
life and asked again at most once per `refresh_seconds` (a scheduled pass asks
every pass; only a stale entry costs calls). Each step up (account -> OU -> ...
-> root) is one ListParents call, shared by every account under that OU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from functions.aws.eks import error_code
from functions.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_organizations import OrganizationsClient

REFRESH_SECONDS = 3600.0
# Organizations nests OUs at most five deep under the root: more steps mean a loop
MAX_DEPTH = 8


class OrganizationsAdapter:
    def __init__(
        self,
        organizations_client: OrganizationsClient,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._organizations = organizations_client
        self._refresh = refresh_seconds
        self._clock = clock
        # child id (account or OU) -> (its parent id, when it was read)
        self._parents: dict[str, tuple[str, float]] = {}
        # account -> (when it could not be read, why): not asked again until stale
        self._unreadable: dict[str, tuple[float, str]] = {}

    def ou_path(self, account: str) -> tuple[str, ...]:
        """The account's OUs, nearest first, ending at the root id; () when
        Organizations cannot be read (not in use, or the call is denied)."""
        failed = self._unreadable.get(account)
        if failed is not None and self._fresh(failed[0]):
            return ()
        path: list[str] = []
        child = account
        try:
            for _ in range(MAX_DEPTH):
                parent, is_root = self._parent(child)
                path.append(parent)
                if is_root:
                    self._unreadable.pop(account, None)
                    return tuple(path)
                child = parent
            reason = f"no root within {MAX_DEPTH} steps up from account {account}"
        except ClientError as error:
            reason = error_code(error) or str(error)
        except BotoCoreError as error:
            reason = str(error)
        except ValueError as error:  # an answer of another shape than one parent
            reason = str(error)
        self._unreadable[account] = (self._clock(), reason)
        # denied is the operator's to fix; no organization at all is a deployment's choice
        log = logger.warning if reason.startswith("AccessDenied") else logger.info
        log(
            "cannot read the account's OU (organizations:ListParents); declarations "
            "narrowed by organizationalUnits do not match its clusters",
            account=account,
            reason=reason,
        )
        return ()

    def _fresh(self, read_at: float) -> bool:
        return self._clock() - read_at < self._refresh

    def _parent(self, child: str) -> tuple[str, bool]:
        cached = self._parents.get(child)
        if cached is not None and self._fresh(cached[1]):
            return cached[0], cached[0].startswith("r-")
        parents = self._organizations.list_parents(ChildId=child)["Parents"]
        if len(parents) != 1:  # an account or OU is in exactly one place
            raise ValueError(f"ListParents answered {len(parents)} parents for {child}")
        parent = parents[0]
        self._parents[child] = (parent["Id"], self._clock())
        return parent["Id"], parent["Type"] == "ROOT"
