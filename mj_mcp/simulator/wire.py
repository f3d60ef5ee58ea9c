"""The upstream's wire: its verbatim messages, its reply shapes, and lenient request parsing.

Requests are parsed with the wire models of `mj_mcp.models`, leniently: unknown keys are dropped
and key case is ignored (as the real servers do), the upstream's own checks run on the raw body
first so that their verbatim messages come back, and whatever the models still reject becomes a
code 4 (constraint) or a Spring 400 (wrong type / unknown enum value). A handler ends a request
early by raising `Answer` with the reply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, NoReturn, TypeVar, get_args

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mj_mcp.clock import Clock
from mj_mcp.models import CODE_NOT_FOUND, CODE_VALIDATION, WireModel
from mj_mcp.simulator.profiles import Prefix

__all__ = [
    "Answer",
    "Call",
    "bad_request",
    "envelope",
    "http_reason",
    "read_body",
    "reject",
    "spring_error",
    "task_missing",
    "text",
    "validate",
]

MSG_OK: Final = "提交成功"
MSG_PROMPT_EMPTY: Final = "prompt不能为空"
MSG_BANNED: Final = "可能包含敏感词"
MSG_BASE64: Final = "base64格式错误"
MSG_PARAM: Final = "参数错误"
MSG_NOT_FOUND: Final = "关联任务不存在或已失效"
MSG_BAD_STATUS: Final = "关联任务状态错误"
MSG_UNKNOWN_ACTION: Final = "未知的 Action 类型"
MSG_MODAL: Final = "Waiting for window confirm"
MSG_EXISTS: Final = "任务已存在"
MSG_QUEUE_FULL_TA: Final = "提交失败，队列已满，请稍后重试"
MSG_QUEUE_FULL_NZ: Final = "队列已满，请稍后尝试"
MSG_NO_ACCOUNT: Final = "无可用的账号实例"

# Spring answers 400 when the JSON cannot be bound: wrong JSON types and unknown enum values.
_BIND_ERRORS: Final = frozenset(
    {
        "literal_error",
        "enum",
        "string_type",
        "int_type",
        "int_parsing",
        "int_from_float",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
    }
)

_M = TypeVar("_M", bound=WireModel)


class Answer(Exception):
    """Raised by a handler to end the request with this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(slots=True)
class Call:
    """One routed request: the path without its mode prefix, and that prefix's mode."""

    request: Request
    mode: str | None
    path: str
    params: dict[str, str]
    clock: Clock
    """The simulator's clock (Spring's error bodies carry a timestamp)."""
    body: bytes | None = None
    """The body as forwarded by a gateway in front (new-api), instead of the request's own."""
    prefix: Prefix | None = None
    """The speed-mode prefix as forwarded by a gateway in front (None: none, or stripped)."""

    @property
    def base(self) -> str:
        return str(self.request.base_url).rstrip("/")


def http_reason(status: int) -> str:
    """The reason phrase of an HTTP status, as servers print it."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def spring_error(status: int, path: str, now: float) -> Response:
    """Spring Boot's JSON error body (a 400 for unreadable JSON, 404/405, a 500)."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return JSONResponse(
        {"timestamp": stamp, "status": status, "error": http_reason(status), "path": path}, status_code=status
    )


def bad_request(call: Call) -> NoReturn:
    raise Answer(spring_error(400, call.path, call.clock.now()))


def envelope(
    code: int,
    description: str,
    result: Any = None,
    properties: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The upstream's `{code, description, result, properties}` reply."""
    body = {"code": code, "description": description, "result": result, "properties": dict(properties or {})}
    return JSONResponse(body, status_code=status)


def reject(description: str, code: int = CODE_VALIDATION, **properties: Any) -> NoReturn:
    raise Answer(envelope(code, description, None, properties))


def task_missing() -> NoReturn:
    raise Answer(envelope(CODE_NOT_FOUND, MSG_NOT_FOUND, status=404))


def text(raw: Mapping[str, Any], key: str) -> str:
    """A string field of a raw body, stripped; "" when it is missing or not a string."""
    value = raw.get(key)
    return value.strip() if isinstance(value, str) else ""


async def read_body(
    call: Call, model: type[WireModel], *, required: bool = True, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON object of the request, reduced to `model`'s fields (plus `keep`) under their
    wire names, so that the upstream's own checks can read it before the model does."""
    raw = call.body if call.body is not None else await call.request.body()
    if not raw.strip():
        if required:
            bad_request(call)
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        bad_request(call)
    if not isinstance(data, dict):
        bad_request(call)
    return _lenient(model, data, keep)  # pyright: ignore[reportUnknownArgumentType]


def validate(call: Call, model: type[_M], raw: Mapping[str, Any], *, submit: bool = True) -> _M:
    """The request model; a wrong type or enum value is Spring's 400, a broken constraint
    (too long, out of range) a code 4 on submits."""
    try:
        return model.model_validate(_lenient(model, raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if not submit or any(e["type"] in _BIND_ERRORS for e in errors):
            bad_request(call)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        reject(f"{MSG_PARAM}: {where} {first['msg']}")


def _field_aliases(model: type[WireModel]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        aliases[name.lower()] = alias
        aliases[alias.lower()] = alias
    return aliases


def _nested_model(annotation: Any) -> type[WireModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, WireModel):
            return candidate
    return None


def _lenient(model: type[WireModel], raw: Mapping[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """Keep only the model's fields (and `keep`), matching key case-insensitively as TA does.

    The real upstreams ignore unknown fields; the request models forbid them (for the client's
    sake), so they are dropped here rather than rejected.
    """
    aliases = {**{k.lower(): k for k in keep}, **_field_aliases(model)}
    by_alias = {info.alias or name: info for name, info in model.model_fields.items()}
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        alias = aliases.get(key.lower())
        if alias is None:
            continue
        nested = _nested_model(by_alias[alias].annotation) if alias in by_alias else None
        if nested is not None and isinstance(value, dict):
            value = _lenient(nested, value)  # pyright: ignore[reportUnknownArgumentType]
        cleaned[alias] = value
    return cleaned
