"""Input schemas of the tools: the endpoint's request model plus its control arguments, compact.

Agents pay for tools/list on every turn, so the schemas say only what constrains a call: no
titles (the property names say it), no `"default": null`, and `T | None` listed as `T` (leaving
an argument out is how a model says "none"). Pydantic's own schema generator does this through
`CompactSchema`; `$ref`s are inlined afterwards, since some clients do not follow them.

`Surface` is how the tools show those models under the settings: with MJ_TOOL_FIELDS=lean the
account-selection and callback fields are left out, with the checks that validation makes anyway
(a projection of the one schema, not other models); the wait timeout states its configured
default. `surface_bytes` measures what a model reads of the tools, which the contract bounds.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from pydantic import create_model
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from mj_mcp.config import Settings, ToolFields
from mj_mcp.models import (
    DescribeRequest,
    ImagineRequest,
    ShortenRequest,
    ShowRequest,
    SwapFaceRequest,
    WireModel,
)
from mj_mcp.querymodels import QueryRequest
from mj_mcp.upstreams import Profile

__all__ = [
    "AS_MODELS",
    "LEAN_HIDDEN",
    "LEAN_NARROWS",
    "CompactSchema",
    "Surface",
    "arguments_model",
    "input_schema",
    "model_schema",
    "portable",
    "surface_bytes",
]


class CompactSchema(GenerateJsonSchema):
    """Smaller schema, same meaning: no titles, no `None` defaults, `T | None` as `T`.

    (Choices are `Literal`s in the request models: an `Enum` would bring its class name as a title.)"""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        return _untitled(super().model_schema(schema))

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if "default" in generated and generated["default"] is None:
            del generated["default"]
        return generated

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if "anyOf" in inner:
            # A union of several types keeps its explicit null: "one of these, or nothing".
            return super().nullable_schema(schema)
        # The type's own keywords are listed before the field's (description, default): see `sort`.
        return {**inner, _TYPE_KEYS: sorted(inner)}

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        """Keys in alphabetical order (as pydantic sorts them), except that a collapsed `T | None`
        lists T's keywords first: the order the published schemas have always had."""
        return cast(JsonSchemaValue, _ordered(value, parent_key))


_TYPE_KEYS: Final = "x-mj-type-keys"
"""Marks a collapsed `T | None` during generation, naming T's keywords; `sort` removes it."""


def _ordered(value: Any, parent_key: str | None) -> Any:
    if isinstance(value, list):
        return [_ordered(item, parent_key) for item in cast(list[Any], value)]
    if not isinstance(value, dict):
        return value
    node = dict(cast(dict[str, Any], value))
    if parent_key in ("properties", "default"):
        keys = list(node)  # field order, and default values, stay as they are
    else:
        first = [k for k in cast(list[str], node.pop(_TYPE_KEYS, [])) if k in node]
        keys = first + sorted(k for k in node if k not in first)
    return {key: _ordered(node[key], key) for key in keys}


def _untitled(schema: JsonSchemaValue) -> JsonSchemaValue:
    schema.pop("title", None)
    return schema


def inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `$ref`s to `$defs` by their definitions (our models are not recursive)."""
    if isinstance(node, dict):
        source = cast(dict[str, Any], node)
        ref = source.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in source.items() if k != "$ref"}
            target = cast(dict[str, Any], defs[ref.removeprefix("#/$defs/")])
            return inline_refs({**target, **rest}, defs)
        return {k: inline_refs(v, defs) for k, v in source.items()}
    if isinstance(node, list):
        return [inline_refs(v, defs) for v in cast(list[Any], node)]
    return node


@functools.cache
def model_schema(model: type[WireModel]) -> dict[str, Any]:
    """Cached: the job controls' schema is part of twelve tools (and get_task's of one), and tests
    build many servers. Callers copy what they keep."""
    raw = model.model_json_schema(by_alias=True, schema_generator=CompactSchema)
    defs = cast(dict[str, Any], raw.pop("$defs", {}))
    return cast(dict[str, Any], inline_refs(raw, defs))


def input_schema(request: type[WireModel], controls: type[WireModel]) -> dict[str, Any]:
    """The schema of `arguments_model(name, request, controls)`: the request's fields, then the controls."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in (model_schema(request), model_schema(controls)):
        properties.update(copy.deepcopy(cast(dict[str, Any], part.get("properties", {}))))
        required += [name for name in cast(list[str], part.get("required", [])) if name not in required]
    # Unknown arguments are still refused by the model at call time, with a message naming them.
    schema: dict[str, Any] = {"type": "object"}
    # Required fields first: the order a model reads them in is the order it fills them in.
    ordered = sorted(properties.items(), key=lambda kv: kv[0] not in required)
    schema["properties"] = {
        name: portable(prop) if name in required else {**portable(prop), "nullable": True} for name, prop in ordered
    }
    if required:
        schema["required"] = required
    return schema


def portable(node: Any) -> Any:
    """`node` in the subset of JSON Schema every function-calling converter takes unchanged.

    No `additionalProperties` (google-genai's MCP converter fails on a boolean there; the server
    refuses unknown arguments itself), and `minimum`/`maximum` for their exclusive forms (dropped
    by several converters; the models still refuse the bound itself at call time).
    """
    if isinstance(node, list):
        return [portable(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in cast(dict[str, Any], node).items():
        if key == "additionalProperties":
            continue
        if key == "properties":  # names, not keywords: each value is a schema
            out[key] = {name: portable(prop) for name, prop in cast(dict[str, Any], value).items()}
        else:  # values, not schemas, under default and enum
            out[_INCLUSIVE.get(key, key)] = value if key in ("default", "enum") else portable(value)
    return out


_INCLUSIVE: Final = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}


@functools.cache
def arguments_model(name: str, request: type[WireModel], controls: type[WireModel]) -> type[WireModel]:
    """The request model plus the control arguments (none: the request model itself).

    Made at a tool's first call, not at start-up: `create_model` costs milliseconds per tool,
    and the schema in tools/list is put together from the two models without it.
    """
    if not controls.model_fields:
        return request
    # Base order puts the request's fields first, the controls after them, as in the input schema.
    return create_model(f"{name}_arguments", __base__=(controls, request), __doc__=request.__doc__)


# -- the surface: what the settings show of the schemas --------------------------------------------

ACCOUNT_FIELDS: Final = frozenset({"instanceId", "modes", "remix", "accountFilter"})
CALLBACK_FIELDS: Final = frozenset({"notifyHook", "state"})
LEAN_HIDDEN: Final = ACCOUNT_FIELDS | CALLBACK_FIELDS
"""What MJ_TOOL_FIELDS=lean leaves out of every tool: account selection is the MJ_ACCOUNT_FILTER
setting, and callbacks are the server's own business (it sets notifyHook when MJ_PUBLIC_URL is
set); a model offered them repeats them in every call, and mistakes `modes` for `mode`."""
LEAN_NARROWS: Final[Mapping[type[WireModel], frozenset[str]]] = {
    ImagineRequest: frozenset({"botType"}),
    DescribeRequest: frozenset({"mode"}),
    ShortenRequest: frozenset({"botType", "mode"}),
    ShowRequest: frozenset({"mode"}),
    SwapFaceRequest: frozenset({"mode"}),
    QueryRequest: frozenset({"id", "ids", "statusSet", "promptEn", "description", "failReason"}),
}
"""What lean leaves out of one tool as well, as no agent needs it there: `botType` where the prompt
says it (`--niji 6`) or where the bot makes no difference (shorten); the speed `mode` of jobs that
render nothing (describe, shorten, show, and swap_face, which is not Midjourney's; MJ_MODE still
applies); the paged query's filters by id (get_task and list_tasks do that), by several statuses
(`status` takes one) and over texts an agent never reads (promptEn, the upstream's description,
failReason)."""
_UNSHOWN_CHECKS: Final = frozenset({"minLength", "maxLength", "pattern"})
"""Checks lean leaves to validation: no real id or prompt meets a length limit, a description says
a pattern in fewer bytes, and a call that breaks one is refused with a message naming the field."""


@dataclass(frozen=True, slots=True)
class Surface:
    """How the tools show their models: the wire fields left out, and the wait timeout's default.

    `AS_MODELS` shows the models as they are (what `build_tool` does unless told)."""

    fields: ToolFields = "full"
    wait_timeout: float | None = None
    """MJ_WAIT_TIMEOUT, stated as `timeout`'s default (the models leave it None: "the setting's")."""
    profile: Profile | None = None
    """The MJ_UPSTREAM profile: the `EXTRA_FIELDS` it does not read are left out (None: none are)."""

    @classmethod
    def of(cls, settings: Settings) -> Surface:
        return cls(settings.tool_fields, settings.wait_timeout, settings.profile)

    def hidden(self, request: type[WireModel]) -> frozenset[str]:
        """The wire names of `request` (and its tool's controls) this surface leaves out."""
        unread = self.profile.unread(request) if self.profile is not None else frozenset[str]()
        if self.fields == "full":
            return unread
        return unread | LEAN_HIDDEN | LEAN_NARROWS.get(request, frozenset())

    def key(self, request: type[WireModel]) -> Hashable:
        """Everything `schema(request, ...)` depends on besides its models: equal keys, equal schemas.

        (The Surface itself is unhashable, its profile holding mappings.)"""
        return (self.fields, self.wait_timeout, self.hidden(request))

    def schema(self, request: type[WireModel], controls: type[WireModel]) -> dict[str, Any]:
        """`input_schema(request, controls)` as this surface shows it (hidden fields are never required)."""
        schema = input_schema(request, controls)
        hidden = self.hidden(request)
        properties = cast(dict[str, Any], schema["properties"])
        schema["properties"] = {
            name: self._shown(name, prop) for name, prop in properties.items() if name not in hidden
        }
        return schema

    def _shown(self, name: str, prop: dict[str, Any]) -> dict[str, Any]:
        if self.fields == "lean":
            prop = _without_checks(prop)
        if name == "timeout" and self.wait_timeout is not None:
            return {"default": _number(self.wait_timeout), **prop}
        return prop

    def refusal(self, tool: str, request: type[WireModel], arguments: Mapping[str, Any]) -> str | None:
        """Why `arguments` cannot be taken (they name hidden fields), or None.

        The server refuses unknown arguments anyway; a hidden one is told what replaces it."""
        given = [name for name in arguments if name in self.hidden(request)]
        if not given:
            return None
        reasons = [
            reason
            for names, reason in (
                (ACCOUNT_FIELDS, "account selection is the server's MJ_ACCOUNT_FILTER setting"),
                (CALLBACK_FIELDS, "callbacks are the server's own business (MJ_PUBLIC_URL)"),
            )
            if names.intersection(given)
        ]
        unread = [name for name in given if self.profile is not None and name in self.profile.unread(request)]
        if unread and self.profile is not None:
            reasons.append(f"{self.profile.title} ({self.profile.setting}) does not read {', '.join(unread)}")
        why = f" ({'; '.join(reasons)})" if reasons else ""
        lean = " with MJ_TOOL_FIELDS=lean" if self.fields == "lean" else ""
        return (
            f"{tool} does not take {', '.join(given)}{lean}{why}. Call {tool} again without them; the server "
            "lists every field its upstream reads when it runs with MJ_TOOL_FIELDS=full."
        )


AS_MODELS: Final = Surface()


def _without_checks(prop: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in prop.items() if k not in _UNSHOWN_CHECKS}
    if shown.get("minimum") == 0:
        del shown["minimum"]  # a timeout above 0, a 0-based page: the description says it
    items = shown.get("items")
    if isinstance(items, dict):
        shown["items"] = _without_checks(cast(dict[str, Any], items))
    return shown


def _number(value: float) -> float | int:
    # 300, not 300.0: what a model reads, and what it would write.
    return int(value) if float(value).is_integer() else value


def surface_bytes(tools: Iterable[Mapping[str, Any]]) -> int:
    """The bytes a model reads of `tools` (tools/list entries, wire names): each tool's name,
    title, description and input schema, as compact UTF-8 JSON. Output schemas and annotations are
    not counted: clients do not put them in the model's context."""
    read = ("name", "title", "description", "inputSchema")
    return sum(
        len(json.dumps({k: tool[k] for k in read if k in tool}, ensure_ascii=False, separators=(",", ":")).encode())
        for tool in tools
    )
