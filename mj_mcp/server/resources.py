"""The resources: a task, its image, a page of the task query, the recent tasks, the queue.

Each is a method of `TaskResources` (registered with `server.resource(...)(method)`), and every
upstream error becomes a resource error in one place, `_as_resource_error`. Every read goes
through the calling tenant's client with MJ_CLIENT_KEYS (`Holder.get()`), so another tenant's
task id reads as "no such task", as the upstream answers that key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import ValidationError as PydanticValidationError

from mj_mcp.client import MjClient
from mj_mcp.errors import MjError, TaskNotFoundError, validation_problems
from mj_mcp.images import png_for_resource
from mj_mcp.models import Task
from mj_mcp.querymodels import QueryRequest
from mj_mcp.results import task_uri
from mj_mcp.server.runtime import Holder

__all__ = ["TaskResources", "register_resources"]


@contextmanager
def _as_resource_error(uri: str) -> Generator[None]:
    """Upstream errors as the resource errors a client understands ("no such task" is not-found)."""
    try:
        yield
    except TaskNotFoundError:
        raise ResourceNotFoundError(f"{uri}: no such task. recent_tasks lists the latest tasks.") from None
    except MjError as exc:
        raise ResourceError(f"{uri}: {exc}") from None


def _tasks_json(tasks: list[Task]) -> str:
    return json.dumps([t.to_wire() for t in tasks], ensure_ascii=False)


class TaskResources:
    """The resource functions, reaching the running server through the holder."""

    def __init__(self, holder: Holder) -> None:
        self._holder = holder

    async def task(self, taskId: str) -> str:
        with _as_resource_error(task_uri(taskId)):
            task = await self._client().fetch(taskId)
        return json.dumps(task.to_wire(), ensure_ascii=False)

    async def task_image(self, taskId: str) -> bytes:
        uri = f"{task_uri(taskId)}/image"
        with _as_resource_error(uri):
            client = self._client()
            task = await client.fetch(taskId)
            if not task.image_url:
                raise ResourceNotFoundError(f"{uri}: task {taskId} has no image (status {task.status}).")
            data, _mime = await client.download(task.image_url)
            return await anyio.to_thread.run_sync(png_for_resource, data)

    async def page(
        self,
        pageNumber: str,
        pageSize: str | None = None,
        sort: str | None = None,
        action: str | None = None,
        status: str | None = None,
        prompt: str | None = None,
        state: str | None = None,
    ) -> str:
        uri = f"mj://tasks/page/{pageNumber}"
        raw: dict[str, Any] = {
            "pageNumber": pageNumber,
            "pageSize": pageSize,
            "sort": sort,
            "action": action,
            "status": status,
            "prompt": prompt,
            "state": state,
        }
        try:
            query = QueryRequest.model_validate({k: v for k, v in raw.items() if v is not None})
        except PydanticValidationError as exc:
            problems = validation_problems(exc, whole="page", limit=4)
            raise MCPError(
                INVALID_PARAMS,
                f"{uri}: {problems}. Use a 0-based page number, and optionally pageSize (1-100), sort, action, "
                "status, prompt, state as query parameters.",
                {"uri": uri},
            ) from None
        with _as_resource_error(uri):
            page = await self._client().query(query)
        return json.dumps(page.to_wire(), ensure_ascii=False)

    async def recent(self) -> str:
        with _as_resource_error("mj://tasks/recent"):
            return _tasks_json(await self._client().recent())

    async def queue(self) -> str:
        with _as_resource_error("mj://queue"):
            return _tasks_json(await self._client().queue())

    def _client(self) -> MjClient:
        """The upstream client of this read: with MJ_CLIENT_KEYS the calling tenant's, with its key."""
        return self._holder.get().client


def register_resources(server: MCPServer[Any], holder: Holder, *, offers: Callable[[str], bool]) -> None:
    """The task resources, and those lists the upstream can give (`offers` an endpoint's name)."""
    resources = TaskResources(holder)
    server.resource(
        "mj://tasks/{taskId}",
        name="task",
        title="A task",
        description="The upstream Task (status, progress, imageUrl, buttons) as JSON.",
        mime_type="application/json",
    )(resources.task)
    server.resource(
        "mj://tasks/{taskId}/image",
        name="task-image",
        title="A task's image",
        description="The task's image as PNG (full size; scaled down only to stay under 7 MiB).",
        mime_type="image/png",
    )(resources.task_image)
    if offers("query_tasks"):
        server.resource(
            "mj://tasks/page/{pageNumber}{?pageSize,sort,action,status,prompt,state}",
            name="task-page",
            title="A page of tasks",
            description="One page of the paged task query (0-based), as the upstream's Page object.",
            mime_type="application/json",
        )(resources.page)
    if offers("recent_tasks"):
        server.resource(
            "mj://tasks/recent",
            name="recent-tasks",
            title="Recent tasks",
            description="The latest tasks, newest first (JSON array of Tasks).",
            mime_type="application/json",
        )(resources.recent)
    if offers("task_queue"):
        server.resource(
            "mj://queue",
            name="queue",
            title="Upstream queue",
            description="Tasks waiting or running upstream (JSON array of Tasks).",
            mime_type="application/json",
        )(resources.queue)
