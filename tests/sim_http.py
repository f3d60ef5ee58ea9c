"""HTTP helpers for the simulator's tests: submit, fetch and press against a simulator in-process.

Every helper asserts the happy path it expects, so that a test reads as the steps a client takes.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx2
from PIL import Image

from mj_mcp.models import Task
from mj_mcp.simulator import ManualClock

JOB = 8.0  # the default job_seconds
NA_KEY = "sk-NewApiToken0123456789abcdef"
"""A key every auth dialect can hold: new-api's are "sk-" + letters and digits."""


def png_uri(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (12, 8)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def post(client: httpx2.AsyncClient, path: str, body: Any) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def submit(client: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> str:
    reply = await post(client, path, body)
    assert reply["code"] == 1, reply
    assert isinstance(reply["result"], str)
    return reply["result"]


async def fetch(client: httpx2.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/mj/task/{task_id}/fetch")
    assert response.status_code == 200, response.text
    return response.json()


async def finished(client: httpx2.AsyncClient, clock: ManualClock, task_id: str) -> dict[str, Any]:
    clock.advance(JOB)
    task = await fetch(client, task_id)
    assert task["status"] == "SUCCESS", task
    return task


async def imagine_done(client: httpx2.AsyncClient, clock: ManualClock, prompt: str = "a cat") -> dict[str, Any]:
    return await finished(client, clock, await submit(client, "/mj/submit/imagine", {"prompt": prompt}))


def button(task: dict[str, Any], wanted: str) -> str:
    found = Task.model_validate(task).button(wanted)
    assert found is not None, (wanted, task["buttons"])
    return found.custom_id


async def press(client: httpx2.AsyncClient, task: dict[str, Any], wanted: str, **extra: Any) -> dict[str, Any]:
    return await post(client, "/mj/submit/action", {"taskId": task["id"], "customId": button(task, wanted), **extra})


async def press_done(
    client: httpx2.AsyncClient, clock: ManualClock, task: dict[str, Any], wanted: str
) -> dict[str, Any]:
    reply = await press(client, task, wanted)
    assert reply["code"] == 1, reply
    return await finished(client, clock, reply["result"])


async def upscale_done(client: httpx2.AsyncClient, clock: ManualClock, prompt: str = "a cat") -> dict[str, Any]:
    return await press_done(client, clock, await imagine_done(client, clock, prompt), "U1")


async def image_of(client: httpx2.AsyncClient, url: str) -> Image.Image:
    response = await client.get(url)
    assert response.status_code == 200
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def assert_code(reply: dict[str, Any], code: int, description: str) -> None:
    assert (reply["code"], reply["description"]) == (code, description), reply
    assert reply["result"] is None
    assert isinstance(reply["properties"], dict)
