"""What several instances of the server may share: small protocols, and who implements them.

One process keeps everything in memory (the defaults, in jobs.py and waiting.py). With
MJ_REDIS_URL, mj_mcp.redisstate implements the same protocols on Redis, so that instances behind
a load balancer act as one. Each object is bound to one lane (a tenant with MJ_CLIENT_KEYS, or
the whole server), so none of them ever sees another tenant's ids.
"""

from __future__ import annotations

from typing import Protocol

from mj_mcp.models import Task

__all__ = ["JobCounter", "JobRegistry", "PollSharing"]


class JobCounter(Protocol):
    """The jobs started under MJ_MAX_JOBS."""

    async def take(self, limit: int) -> bool:
        """Count one more job if fewer than `limit` were started; False (and nothing counted) if not."""
        ...


class JobRegistry(Protocol):
    """Jobs started lately by their argument digest, whose call has not answered yet."""

    async def joinable(self, key: str) -> str | None:
        """The task id of an unanswered job started with these arguments, or None."""
        ...

    async def started(self, key: str, task_id: str) -> None:
        """A job with these arguments was accepted as `task_id`."""
        ...

    async def answered(self, key: str, task_id: str) -> None:
        """The call of `task_id` answered: a repeat of it is a new job from now on."""
        ...


class PollSharing(Protocol):
    """Which watched tasks this instance polls, and how its reads reach the other instances."""

    async def claim(self, ids: list[str]) -> list[str]:
        """Those of `ids` this instance polls this tick (the others are polled elsewhere)."""
        ...

    async def publish(self, tasks: list[Task]) -> None:
        """Hand the snapshots this instance just read to the instances that wait on them too."""
        ...
