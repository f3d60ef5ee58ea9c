"""How one tool call runs: validate the arguments, call the handler, answer with a CallToolResult.

One mechanism for every tool. Arguments are validated by the spec's own models, so a model
that sends a wrong argument gets a readable isError result naming the field, not a traceback;
upstream errors become isError results with their hint; anything unexpected is logged and
reported without details. Progress of a waited-for task goes out as MCP progress notifications.
Each tool's `outputSchema` is generated from the view its structured content is (mj_mcp.views).
"""

from __future__ import annotations

import base64
import copy
import functools
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import ValidationError as PydanticValidationError

from mj_mcp.errors import MjError, validation_problems
from mj_mcp.jobs import Progress
from mj_mcp.models import Task
from mj_mcp.results import Rendered, describe_status, error_result
from mj_mcp.server.runtime import Holder
from mj_mcp.server.schema import AS_MODELS, CompactSchema, Surface, arguments_model, inline_refs, portable
from mj_mcp.server.sdk_glue import make_tool
from mj_mcp.server.tools import ToolCall, ToolSpec
from mj_mcp.views import View

__all__ = ["build_tool", "call_result", "output_schema"]

logger = logging.getLogger(__name__)

PreviewSetting = Literal["image", "none"]
"""MJ_PREVIEW: whether results carry the picture as an image item."""


def build_tool(
    spec: ToolSpec[Any, Any], holder: Holder, *, preview: PreviewSetting = "image", surface: Surface = AS_MODELS
) -> Tool:
    """The MCP tool for `spec`: schema and validation from its models, errors as results."""
    shape = _shape(spec, surface)
    request_fields, control_fields = shape.request_fields, shape.control_fields
    required, properties = shape.required, shape.properties
    output = spec.output

    async def run_tool(ctx: Context, **arguments: Any) -> CallToolResult:
        # Some frameworks send every argument, filling the ones the model left out with null, ""
        # or []: for an optional argument each of those means "not given".
        given = {
            k: _integers_as_digits(v, properties.get(k, {}))
            for k, v in arguments.items()
            if k in required or not _blank(v)
        }
        if (refusal := surface.refusal(spec.name, spec.request, given)) is not None:
            return call_result(preview, error_result(refusal))
        try:
            parsed = arguments_model(spec.name, spec.request, spec.controls).model_validate(given)
        except PydanticValidationError as exc:
            return call_result(preview, error_result(_invalid_arguments(spec.name, exc)), output)
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True)
        request = spec.request.model_validate({k: v for k, v in dumped.items() if k in request_fields})
        controls = spec.controls.model_validate({k: v for k, v in dumped.items() if k in control_fields})
        call = ToolCall(spec.endpoint, _progress(ctx))
        try:
            # The Runtime of this call: with MJ_CLIENT_KEYS the caller's tenant's (an MjError if none).
            return call_result(preview, await spec.handler(holder.get(), call, request, controls), output)
        except MjError as exc:
            logger.info("%s failed: %s", spec.name, exc.message)
            return call_result(preview, error_result(str(exc)), output)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            logger.exception("Unexpected error in tool %s", spec.name)
            return call_result(
                preview,
                error_result(
                    f"{spec.name} failed with an internal error (logged on the server). Try again; if it "
                    "persists, check the server log."
                ),
                output,
            )

    return make_tool(
        run_tool,
        name=spec.name,
        title=None,  # in the annotations: clients show it, and models are not given it (see `_annotations`)
        description=spec.description,
        parameters=shape.parameters,
        annotations=shape.annotations,
        output_schema=shape.output_schema,
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a tool's MCP form takes from its spec and surface alone: made once per process and
    shared, never changed, by that tool on every server (tests build a server per session).

    Sharing the schema dicts is safe because nothing writes to them: the SDK's `list_tools` puts
    them in the tools it answers with, which go out serialized (middleware edits only that
    serialized form); the streamable-HTTP argument-header check reads `Tool.parameters`, and so
    does `run_tool`. (Whoever calls `server.list_tools()` in process gets them too, and must not
    change them.) tests/test_server_reuse.py checks that a session leaves them as they were made."""

    parameters: dict[str, Any]
    required: frozenset[str]
    properties: dict[str, dict[str, Any]]
    request_fields: frozenset[str]
    control_fields: frozenset[str]
    annotations: ToolAnnotations
    output_schema: dict[str, Any]


_shapes: dict[tuple[ToolSpec[Any, Any], Hashable], _Shape] = {}


def _shape(spec: ToolSpec[Any, Any], surface: Surface) -> _Shape:
    key = (spec, surface.key(spec.request))
    shape = _shapes.get(key)
    if shape is None:
        parameters = surface.schema(spec.request, spec.controls)
        shape = _shapes[key] = _Shape(
            parameters=parameters,
            required=frozenset(cast(list[str], parameters.get("required", []))),
            properties=cast(dict[str, dict[str, Any]], parameters.get("properties", {})),
            request_fields=_wire_names(spec.request),
            control_fields=_wire_names(spec.controls),
            annotations=_annotations(spec),
            output_schema=_cached_output_schema(spec.output),
        )
    return shape


@functools.cache
def _cached_output_schema(view: type[View]) -> dict[str, Any]:
    raw = view.model_json_schema(by_alias=True, schema_generator=CompactSchema, mode="serialization")
    defs = cast(dict[str, Any], raw.pop("$defs", {}))
    return _without_model_docs(portable(inline_refs(raw, defs)))


def _without_model_docs(node: Any) -> Any:
    """The schema without the views' docstrings (an object's description): they are written for
    the code; the fields' own descriptions stay."""
    if isinstance(node, list):
        return [_without_model_docs(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    source = cast(dict[str, Any], node)
    is_model = source.get("type") == "object"
    return {k: _without_model_docs(v) for k, v in source.items() if not (is_model and k == "description")}


def output_schema(view: type[View]) -> dict[str, Any]:
    """The tool's `outputSchema`: the view's schema, compact and in the same portable subset as the
    input schemas (no `additionalProperties`, `$ref`s inlined), an object at the top as MCP requires.
    Optional fields are plain `T`: the view leaves out what it has no value for, never sends null."""
    return copy.deepcopy(_cached_output_schema(view))


def call_result(preview: PreviewSetting, rendered: Rendered, output: type[View] | None = None) -> CallToolResult:
    """The MCP form of a rendered result: one text block (the text, the notes, a last line naming the
    tasks' resources), then the preview.

    One text block, because some clients (smolagents) keep only the first content item: it alone
    names the task, its status and buttons, the next call and the `mj://tasks/{id}` URI.
    No `resource_link` items: several frameworks turn them into file URLs that model APIs refuse,
    so the URIs are named in text instead. With MJ_PREVIEW=none there is no image item either, for
    frameworks that would turn it into text.
    """
    lines = [rendered.text, *rendered.notes]
    if rendered.links:
        lines.append("Resources: " + ", ".join(link.uri for link in rendered.links))
    content: list[ContentBlock] = [TextContent(text="\n".join(lines))]
    if rendered.preview is not None and preview == "image":
        data = base64.b64encode(rendered.preview.data).decode("ascii")
        content.append(ImageContent(data=data, mime_type=rendered.preview.mime))
    if rendered.is_error:
        # An error may leave structured content out (MCP requires it to match the outputSchema
        # only on success), but what it does carry must still match: some clients check it anyway.
        structured = rendered.structured if _conforms(rendered.structured, output) else None
        return CallToolResult(content=content, structured_content=structured, is_error=True)
    return CallToolResult(content=content, structured_content=rendered.structured)


def _conforms(structured: dict[str, Any] | None, output: type[View] | None) -> bool:
    """Whether `structured` is a valid `output` (nothing, or nothing to check against, is)."""
    if structured is None or output is None:
        return True
    try:
        output.model_validate(structured)
    except PydanticValidationError:
        return False
    return True


def _progress(ctx: Context) -> Progress:
    async def report(task: Task) -> None:
        try:
            await ctx.report_progress(float(task.percent), 100.0, describe_status(task))
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:  # a client that went away must not fail the wait
            logger.debug("Could not send a progress notification", exc_info=True)

    return report


def _annotations(spec: ToolSpec[Any, Any]) -> ToolAnnotations:
    # Only hints that differ from the spec's defaults (every byte of tools/list is paid per turn).
    # The title is for people: clients show `annotations.title` where a tool has no `title` (legacy-era
    # clients know only this one), and a model, which reads a tool's `title`, has its name.
    return ToolAnnotations(
        title=spec.title,
        read_only_hint=True if spec.kind == "read" else None,
        destructive_hint={"job": False, "destructive": True}.get(spec.kind),
        idempotent_hint=True if spec.kind == "read" else None,
        open_world_hint=True,
    )


def _integers_as_digits(value: Any, schema: dict[str, Any]) -> Any:
    """An integer sent for a string (or for an item of an array of strings) as its digits.

    Task ids are numeric strings, and a client that parses typed-in values as JSON (the MCP
    Inspector CLI: `--tool-arg taskId=1796173251888676`) sends them as numbers. Only integers:
    a fraction or a bool for a string is still refused."""
    kind = schema.get("type")
    if kind == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "array" and isinstance(value, list):
        items = cast(dict[str, Any], schema.get("items", {}))
        return [_integers_as_digits(item, items) for item in cast(list[Any], value)]
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and not value)


def _wire_names(model: type[Any]) -> frozenset[str]:
    return frozenset(f.alias or name for name, f in model.model_fields.items())


def _invalid_arguments(tool: str, exc: PydanticValidationError) -> str:
    shown = validation_problems(exc, whole="arguments", limit=8)
    return f"Invalid arguments for {tool}: {shown}. Fix these and call {tool} again (see its input schema)."
