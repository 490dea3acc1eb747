"""Who may touch which cube: a caller's user and cube ids become a store Scope.

Named cubes are keyed in their owner's namespace (``domain.models.cube_key``),
so another user's cube name reads as a cube of the caller's that does not exist
yet, never as theirs: no 403 oracle, no squatting. The owner check stays as a
guard for data written before that rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from memos.domain.models import Scope, cube_key
from memos.errors import PermissionDenied
from memos.service import validation as v
from memos.settings import LimitSettings
from memos.store.base import MemoryStore


class Access:
    def __init__(self, store: MemoryStore, limits: LimitSettings) -> None:
        self.store = store
        self.limits = limits

    def scope(
        self,
        user_id: str | None,
        cube_id: str | None = None,
        *,
        agent_id: str | None = None,
        app_id: str | None = None,
    ) -> Scope:
        """The caller's scope: their default cube, or their cube named ``cube_id``."""
        user = v.require_id(user_id, "user_id", self.limits)
        name = v.optional_id(cube_id, "cube_id", self.limits)
        scope = Scope(
            user_id=user,
            cube_id=cube_key(user, name),
            agent_id=v.optional_id(agent_id, "agent_id", self.limits),
            app_id=v.optional_id(app_id, "app_id", self.limits),
        )
        owner = self.store.cube_owner(scope.cube_id)
        if owner is not None and owner != user:
            raise PermissionDenied(f"cube {scope.cube_name!r} belongs to another user")
        return scope

    def readable(self, user_id: str | None, cube_ids: Sequence[str | None] | None) -> list[Scope]:
        """One scope per distinct cube asked for (the default cube when none is)."""
        cubes: list[str | None] = [*dict.fromkeys(cube_ids or [])] or [None]
        return [self.scope(user_id, c) for c in cubes]
