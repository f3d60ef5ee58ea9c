"""The resources: a task, its image, a page of the task query, the recent tasks, the queue.

Every upstream error becomes a resource error in one place, `_as_resource_error`. Every read goes
through the calling tenant's client with MJ_CLIENT_KEYS (`Holder.get()`), so another tenant's
task id reads as "no such task", as the upstream answers that key.

The SDK builds a template from its function with pydantic models (milliseconds per template), so
the templates are built once per process and shared by every server: a read finds its server's
Holder through the Context it gets (`_SERVED`). The two fixed resources get no Context; each
server binds them to its Holder, which costs nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import FunctionResource, ResourceTemplate
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
from mj_mcp.server.sdk_glue import add_template

__all__ = ["register_resources"]

_SERVED: WeakKeyDictionary[MCPServer[Any], Holder] = WeakKeyDictionary()
"""The Holder of each server whose resources are registered (weak: a server that is gone drops out)."""


@contextmanager
def _as_resource_error(uri: str) -> Generator[None]:
    """Upstream errors as the resource errors a client understands ("no such task" is not-found)."""
    try:
        yield
    except TaskNotFoundError:
        raise ResourceNotFoundError(f"{uri}: no such task. recent_tasks lists the latest tasks.") from None
    except MjError as exc:
        raise ResourceError(f"{uri}: {exc}") from None


def _client(ctx: Context) -> MjClient:
    """The upstream client of this read: with MJ_CLIENT_KEYS the calling tenant's, with its key."""
    return _SERVED[ctx.mcp_server].get().client


def _tasks_json(tasks: list[Task]) -> str:
    return json.dumps([t.to_wire() for t in tasks], ensure_ascii=False)


async def task(ctx: Context, taskId: str) -> str:
    with _as_resource_error(task_uri(taskId)):
        found = await _client(ctx).fetch(taskId)
    return json.dumps(found.to_wire(), ensure_ascii=False)


async def task_image(ctx: Context, taskId: str) -> bytes:
    uri = f"{task_uri(taskId)}/image"
    with _as_resource_error(uri):
        client = _client(ctx)
        found = await client.fetch(taskId)
        if not found.image_url:
            raise ResourceNotFoundError(f"{uri}: task {taskId} has no image (status {found.status}).")
        data, _mime = await client.download(found.image_url)
        return await anyio.to_thread.run_sync(png_for_resource, data)


async def page(
    ctx: Context,
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
        answer = await _client(ctx).query(query)
    return json.dumps(answer.to_wire(), ensure_ascii=False)


async def _recent(holder: Holder) -> str:
    with _as_resource_error("mj://tasks/recent"):
        return _tasks_json(await holder.get().client.recent())


async def _queue(holder: Holder) -> str:
    with _as_resource_error("mj://queue"):
        return _tasks_json(await holder.get().client.queue())


@functools.cache
def _templates() -> tuple[tuple[str | None, ResourceTemplate], ...]:
    """Each template, after the endpoint it needs (None: every upstream has it); made at first use."""
    return (
        (
            None,
            ResourceTemplate.from_function(
                task,
                "mj://tasks/{taskId}",
                name="task",
                title="A task",
                description="The upstream Task (status, progress, imageUrl, buttons) as JSON.",
                mime_type="application/json",
            ),
        ),
        (
            None,
            ResourceTemplate.from_function(
                task_image,
                "mj://tasks/{taskId}/image",
                name="task-image",
                title="A task's image",
                description="The task's image as PNG (full size; scaled down only to stay under 7 MiB).",
                mime_type="image/png",
            ),
        ),
        (
            "query_tasks",
            ResourceTemplate.from_function(
                page,
                "mj://tasks/page/{pageNumber}{?pageSize,sort,action,status,prompt,state}",
                name="task-page",
                title="A page of tasks",
                description="One page of the paged task query (0-based), as the upstream's Page object.",
                mime_type="application/json",
            ),
        ),
    )


def register_resources(server: MCPServer[Any], holder: Holder, *, offers: Callable[[str], bool]) -> None:
    """The task resources, and those lists the upstream can give (`offers` an endpoint's name)."""
    _SERVED[server] = holder
    for endpoint, template in _templates():
        if endpoint is None or offers(endpoint):
            add_template(server, template)
    if offers("recent_tasks"):
        server.add_resource(
            FunctionResource(
                uri="mj://tasks/recent",
                name="recent-tasks",
                title="Recent tasks",
                description="The latest tasks, newest first (JSON array of Tasks).",
                mime_type="application/json",
                fn=functools.partial(_recent, holder),
            )
        )
    if offers("task_queue"):
        server.add_resource(
            FunctionResource(
                uri="mj://queue",
                name="queue",
                title="Upstream queue",
                description="Tasks waiting or running upstream (JSON array of Tasks).",
                mime_type="application/json",
                fn=functools.partial(_queue, holder),
            )
        )
