"""Schemas every function-calling converter takes unchanged, and arguments as frameworks send them.

The rules (interface.md, "Tools"): every input schema declares at least one property; no
`additionalProperties` anywhere (google-genai's MCP converter fails on a boolean there); `minimum`
and `maximum`, not their exclusive forms; every optional argument is `"nullable": true` (smolagents
sends every argument), and `null`, `""` or `[]` for an optional argument means "not given".
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from tests.helpers import text

pytestmark = pytest.mark.anyio


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


async def test_every_schema_keeps_to_what_every_converter_takes(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        schema = tool.input_schema
        assert schema["type"] == "object"
        assert schema["properties"], f"{tool.name} declares no property"
        keys = _keys(schema)
        assert "additionalProperties" not in keys, tool.name
        assert not keys & {"exclusiveMinimum", "exclusiveMaximum", "$ref", "$defs", "anyOf"}, tool.name
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            assert prop.get("nullable") is (None if name in required else True), f"{tool.name}.{name}"


async def test_null_empty_text_and_empty_lists_for_optional_arguments_mean_not_given(client: Client) -> None:
    # What a framework that sends every argument sends when the model filled in only the prompt.
    result = await client.call_tool(
        "imagine",
        {
            "prompt": "a lighthouse",
            "base64Array": [],
            "botType": None,
            "instanceId": "",
            "modes": None,
            "remix": None,
            "notifyHook": "",
            "state": None,
            "wait": None,
            "timeout": None,
            "mode": None,
        },
    )
    assert not result.is_error, text(result)
    assert (result.structured_content or {}).get("status") == "SUCCESS"


async def test_a_required_argument_sent_empty_is_still_refused(client: Client) -> None:
    result = await client.call_tool("imagine", {"prompt": ""})
    assert result.is_error
    assert "prompt" in text(result)


async def test_recent_tasks_lists_the_newest_up_to_a_limit_and_from_a_date(client: Client) -> None:
    for n in range(3):
        assert not (await client.call_tool("imagine", {"prompt": f"fox {n}", "wait": False})).is_error
    two = await client.call_tool("recent_tasks", {"limit": 2})
    tasks = (two.structured_content or {})["tasks"]
    assert len(tasks) == 2
    assert tasks[0]["submitTime"] >= tasks[1]["submitTime"]
    later = await client.call_tool("recent_tasks", {"since": "2999-01-01"})
    assert (later.structured_content or {})["tasks"] == []
    today = await client.call_tool("recent_tasks", {"since": "today", "limit": None})
    assert not today.is_error, text(today)
    wrong = await client.call_tool("recent_tasks", {"since": "yesterday-ish"})
    assert wrong.is_error
    assert "since" in text(wrong)
    queue = await client.call_tool("task_queue", {"limit": 1})
    assert len((queue.structured_content or {})["tasks"]) <= 1
    assert json.dumps(queue.structured_content)
