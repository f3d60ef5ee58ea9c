"""A stateful fake of the midjourney-proxy HTTP API, as an ASGI app that renders real images.

Why it exists: the client, the waiting loop and the MCP tools are tested against this very
app (in-process through `Simulator.transport()`), `mj-mcp --simulator` runs the server on it,
and `mj-mcp simulate` serves it over HTTP so anybody can try the product without a key.

Design:

- **One object holds all state** (`Simulator`): tasks, uploaded images, pending faults and the
  request log. Nothing runs in the background. A task stores *when* it was queued, and its
  status, progress and times are derived from the injected clock whenever somebody looks
  (`_snapshot`). Tests therefore advance a `ManualClock` instead of sleeping, and a standalone
  server needs no scheduler. With the default `job_seconds=8`: NOT_START at submit, SUBMITTED
  "0%" at 1 s, IN_PROGRESS 15/38/62/85% (with a preview image) from 2 s, SUCCESS at 8 s; a
  failing job ends in FAILURE at 4 s. Every point scales with `job_seconds`.
- **Faithful by default, every dialect on a switch.** The default behaviour follows the TA /
  PLUS flavour documented in docs/upstream-api.md (codes, verbatim messages, HTTP 404 with a
  code-3 body, 204 for an unknown fetch, Spring-style 400 for unreadable JSON). `Quirks` turns
  on the other dialects of §7 (number ids, NZ empty fetch, plain-text 401, queue codes
  22/9/23, banned words, failing jobs, no list-by-condition, PLUS cancel body, an account
  with Remix on) so a client can be tested against each of them.
- **new-api in front** (`Quirks.new_api`): the reseller gateway most commercial keys go
  through, modelled as a layer between the client and this TA upstream (`_via_new_api`): its
  routes (anything else gets its dashboard page), its own checks and their 400
  `{code, description, type: "upstream_error"}` errors, notifyHook and accountFilter stripped
  from what it forwards, codes 21 (except Vary Region / Custom Zoom) and 22 rewritten to 1,
  and its own copy of every task (trimmed Task view, FAILURE at "100%", the one-hour timeout,
  optionally refreshed only every `new_api_poll` seconds).
- **Authentication dialects** (`Quirks.auth`): NZ's `mj-api-secret` only, TA's raw
  `Authorization`-else-`mj-api-secret`, new-api's `Bearer sk-…`, each failing in its own form.
- **Faults** (`Fault`, `Simulator.inject`) replace the reply of the next matching requests with
  an HTTP error, malformed JSON, an empty body or a proxy's HTML error page, hold it back on the
  injected clock (a slow upstream), or break the connection: refused, reset mid-reply, or timed
  out, raised inside the app as the httpx2 errors a network would cause, which the in-process
  transport passes on to the client (over real HTTP the connection is dropped).
- **Requests are parsed with the wire models of `mj_mcp.models`**, leniently: unknown keys are
  dropped and key case is ignored (as the real servers do), the upstream's own checks run on
  the raw body first so that their verbatim messages come back, and whatever the models still
  reject becomes a code 4 (constraint) or a Spring 400 (wrong type / unknown enum value).
- **Routing is one table**: every `models.ENDPOINTS` path plus the TA aliases, reachable under
  `/mj/...`, `/{fast|relax|turbo}/mj/...` and `/mj-{fast|relax|turbo}/mj/...`. One catch-all
  Starlette route logs, applies faults and auth, strips the mode prefix and dispatches.
- **Images are real**: Pillow draws a 2×2 grid (one colour per quadrant, derived from the
  prompt, with the prompt text and the quadrant number), single images for upscales, and a
  small blurred WebP preview while a job runs. They are rendered on first request and kept in
  a small LRU cache. Every URL is absolute, built from the base URL of the request that
  created the task, so links work in-process (`http://sim/...`) and standalone alike.

Served resources (no auth, no mode prefix): `GET /health`, `/sim/images/{taskId}.png` (final),
`/sim/images/{taskId}/preview.webp`, `/sim/images/{taskId}/{1..4}.png` (one quadrant),
`/sim/uploads/{name}`, `/sim/videos/{taskId}/{0..3}.mp4`, and new-api's image proxy
`/mj/image/{taskId}` used by trimmed tasks.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import functools
import hashlib
import io
import json
import logging
import math
import random
import re
import secrets
import textwrap
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    NoReturn,
    Protocol,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    get_args,
    runtime_checkable,
)

import anyio
import httpx2
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import (
    CODE_BANNED_PROMPT,
    CODE_EXISTED_MODAL,
    CODE_FAILURE,
    CODE_IN_QUEUE,
    CODE_NOT_FOUND,
    CODE_QUEUE_REJECTED,
    CODE_SUCCESS,
    CODE_VALIDATION,
    ActionRequest,
    BlendRequest,
    ChangeAction,
    ChangeRequest,
    ConditionRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    ModalRequest,
    QueryRequest,
    ShortenRequest,
    ShowRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
    UploadRequest,
    VideoRequest,
    WireModel,
)

if TYPE_CHECKING:
    # Pillow is imported where pictures are drawn or measured: `mj-mcp --simulator` builds the
    # simulator before its first answer, and most sessions never look at a picture.
    from PIL import Image, ImageFont

__all__ = [
    "DEFAULT_BANNED_WORDS",
    "FAILING_MARKER",
    "FAIL_REASON",
    "INSTANCE_ID",
    "Fault",
    "ManualClock",
    "Quirks",
    "SimTask",
    "Simulator",
    "SimulatorOptions",
    "run_simulator",
]

# ---------------------------------------------------------------------------------------------
# Constants

INSTANCE_ID: Final = "1372468820912115716"
"""The simulated Discord account (properties.discordInstanceId / discordChannelId)."""
DEFAULT_BANNED_WORDS: Final = ("bannedword",)
FAILING_MARKER: Final = "simulate-failure"
"""A prompt containing this text makes the job fail after it started."""
FAIL_REASON: Final = "[Invalid parameter] Invalid value for --ar"
CANCEL_REASON: Final = "取消任务"

MSG_OK: Final = "提交成功"
MSG_PROMPT_EMPTY: Final = "prompt不能为空"
MSG_BANNED: Final = "可能包含敏感词"
MSG_BASE64: Final = "base64格式错误"
MSG_PARAM: Final = "参数错误"
MSG_NOT_FOUND: Final = "关联任务不存在或已失效"
MSG_BAD_STATUS: Final = "关联任务状态错误"
MSG_UNKNOWN_ACTION: Final = "未知的 Action 类型"
MSG_MODAL: Final = "Waiting for window confirm"
MSG_QUEUE_FULL_TA: Final = "提交失败，队列已满，请稍后重试"
MSG_QUEUE_FULL_NZ: Final = "队列已满，请稍后尝试"
MSG_NO_ACCOUNT: Final = "无可用的账号实例"
MSG_TA_UNAUTHORIZED: Final = "Authorization header missing."
NA_TIMEOUT_REASON: Final = "上游任务超时（超过1小时）"
NA_TASK_TIMEOUT: Final = 3600.0
"""new-api fails a task not at 100% this many seconds after its submit."""
NA_INVALID_TOKEN: Final = "无效的令牌"  # noqa: S105 - the message, not a secret

_DEFAULT_START: Final = 1_750_000_000.0
_MAX_TASKS_LISTED: Final = 100
_IMAGE_CACHE_SIZE: Final = 48
_UPLOAD_LIMIT: Final = 256
_MAX_BODY: Final = 64 * 1024 * 1024
_logger = logging.getLogger(__name__)
CALLBACK_TICK: Final = 0.01
"""How often the standalone simulator looks for due callbacks: a change is called back within this."""
_LONG_SIDE: Final = 1024
_PREVIEW_DIVISOR: Final = 4

# The job timeline, as fractions of `job_seconds` after the job was queued (or confirmed).
_PHASES: Final[tuple[tuple[float, str, str], ...]] = (
    (0.125, "SUBMITTED", "0%"),
    (0.25, "IN_PROGRESS", "15%"),
    (0.4375, "IN_PROGRESS", "38%"),
    (0.625, "IN_PROGRESS", "62%"),
    (0.8125, "IN_PROGRESS", "85%"),
    (1.0, "SUCCESS", "100%"),
)
_STARTED_AT: Final = _PHASES[0][0]
_FAIL_AT: Final = 0.5
_UNFINISHED: Final = frozenset({"NOT_START", "SUBMITTED", "IN_PROGRESS"})

# A placeholder that players recognise as MP4 (an `ftyp` box and an empty `mdat` box).
_MP4_PLACEHOLDER: Final = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08mdat"

_MODE_PREFIX: Final = re.compile(r"^/(?:(fast|relax|turbo)|mj-(fast|relax|turbo))(?=/mj/)")
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_DATA_URI: Final = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(.*)$", re.DOTALL)
_KEYCAP_ITEM: Final = re.compile(r"^(\d)\ufe0f\u20e3\s*(.+)$", re.MULTILINE)
_SIMPLE_CHANGE: Final = re.compile(r"^\s*(\S+)\s+(?:([UV])([1-4])|(R))\s*$", re.IGNORECASE)

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

Kind = Literal["grid", "upscale", "upscale_hd", "describe", "shorten", "video", "video_upscale", "edit", "swap"]
ModalNeed = Literal["zoom", "mask", "prompt"]
FaultKind = Literal[
    "status",
    "malformed_json",
    "empty_body",
    "html_error_page",
    "slow",
    "connect_error",
    "connection_reset",
    "read_timeout",
]
_M = TypeVar("_M", bound=WireModel)


# ---------------------------------------------------------------------------------------------
# Public configuration objects


class ManualClock:
    """A clock that only moves when told to: tests advance it instead of sleeping."""

    def __init__(self, start: float = _DEFAULT_START) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds


@dataclass(slots=True)
class Quirks:
    """Switches for the dialects of docs/upstream-api.md §7. Defaults = TA / PLUS behaviour."""

    result_as_number: bool = False
    """Submit `result` ids as JSON numbers (as printed in Swagger dumps)."""
    unknown_fetch: Literal["204", "empty200", "400"] = "204"
    """Fetch of an unknown id: TA 204, NZ empty 200, new-api 400 JSON `task_no_found`."""
    queue_position: int = 0
    """> 0: submits answer code 22 `排队中，前面还有N个任务` and jobs start that much later."""
    queue_full: Literal["9", "23"] | None = None
    """Refuse every new job: TA code 9 or NZ code 23."""
    banned_words: tuple[str, ...] = DEFAULT_BANNED_WORDS
    """Prompts containing one of these (case-insensitive) get code 24."""
    failing_marker: str = FAILING_MARKER
    """Prompts containing this reach IN_PROGRESS, then end in FAILURE with `FAIL_REASON`."""
    auth_plain_text: bool = False
    """401 with TA's plain-text body `Authorization header missing.` instead of an empty one."""
    trimmed_tasks: bool = False
    """Older name of `new_api` (its Task view was the first part of it); either switches it on."""
    new_api: bool = False
    """new-api in front of this upstream (docs/upstream-api.md "NA"): its routes only (others get
    its dashboard page, HTTP 200 HTML); its own checks answered with HTTP 400
    `{"code":4,"description":"<reason> ","type":"upstream_error"}` (`prompt_is_required`,
    `custom_id_is_required`, `unknown_action:<customId>` for buttons it cannot map such as
    PicReader, animate or ❤️, `task_not_found`, `task_status_not_success`, `index_is_required`,
    `task_no_found` for an unknown fetch or seed, `bind_request_body_failed`); `notifyHook` and
    `accountFilter` removed before forwarding (so no callbacks); codes 21 (except Vary Region
    and Custom Zoom) and 22 rewritten to 1; and tasks as its copy shows them: fixed field set, ""
    and 0 instead of null, its action names, the submit reply's description, FAILURE with
    progress "100%", and tasks not done after an hour failed with `上游任务超时（超过1小时）`."""
    new_api_poll: float = 0.0
    """Seconds between new-api's reads of this upstream (new-api: 15). Its copy of a task is the
    upstream's state at the last multiple of this on the clock, and status "" / "0%" (buttons
    and properties null) before its first read. 0: the copy is always current, and a job shows
    as "" / "0%" until it has started."""
    auth: Literal["any", "nz", "ta", "new-api"] = "any"
    """Which headers carry the key (docs §1.1), when the simulator has an `api_key`:
    "any" accepts every style (`Authorization: Bearer k`, `Authorization: k`, `mj-api-secret: k`);
    "nz" only `mj-api-secret`, failing with 401 and an empty body; "ta" the raw `Authorization`
    value if that header is sent (no "Bearer " stripping, and it wins over `mj-api-secret`), else
    `mj-api-secret`, failing with 401 text `Authorization header missing.`; "new-api"
    `Authorization` with "Bearer "/"bearer " and then "sk-" stripped (falling back to
    `mj-api-secret` when it is empty or `midjourney-proxy`; anything after a further "-" names a
    channel), so the key is `sk-` + letters and digits, failing with 401
    `{"error":{"message":…,"type":"new_api_error","code":""}}`."""
    remix: bool = False
    """The account has Remix on (auto-submit off): variation, reroll, pan and animate buttons
    answer code 21 and wait in MODAL for a new prompt, as with `enableRemix: true` (docs §3)."""
    list_by_condition: bool = True
    """False: `/mj/task/list-by-condition` (and `/list-by-ids`) answer 404."""
    cancel_empty_body: bool = True
    """TA answers cancel with an empty 200; False gives PLUS's `{code, description, result}`."""
    no_account: bool = False
    """Refuse every new job with code 3 `无可用的账号实例`: no account can take it (all disabled,
    none with the requested mode)."""


@dataclass(slots=True)
class Fault:
    """Replace the reply of the next `times` requests whose path contains `path`.

    `times=None` keeps the fault until `Simulator.clear_faults()`. With `process_request=True`
    the request is handled first (a job is created) and only its reply is lost, which is how a
    gateway timeout after a successful submit looks to a client. Faults act before auth and
    routing, as a gateway in front of the upstream would.

    Kinds: "status" (an HTTP error, `body` as plain text), "malformed_json", "empty_body",
    "html_error_page" (a proxy's error page), and the network faults an HTTP reply cannot carry:

    - "slow": the normal reply, only `delay` seconds late.
    - "connect_error": the connection is refused, nothing reaches the upstream (and nothing is
      logged in `request_log`); the client sees `httpx2.ConnectError`.
    - "connection_reset": the connection drops after the reply's head; the client sees
      `httpx2.ReadError`. Over real HTTP the peer closes the connection mid-reply.
    - "read_timeout": the reply never comes; the client sees `httpx2.ReadTimeout` at once (no
      real waiting). Over real HTTP the connection drops; use "slow" with a `delay` longer than
      the client's timeout for a genuine one.

    `delay` holds any fault's reply back that many seconds on the simulator's clock: a clock with
    an async `sleep` (a test's fake clock) is asked to sleep, a `ManualClock` is advanced, and
    only the real clock really waits. In-process network faults are exceptions raised inside the
    app, which `Simulator.transport()` passes on to the client as a real transport would.
    """

    path: str = ""
    status: int | None = None
    """HTTP status; default 500 for "status", 200 for the body faults, 502 for an HTML page."""
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: dict[str, str]())
    kind: FaultKind = "status"
    times: int | None = 1
    method: str | None = None
    process_request: bool = False
    delay: float = 0.0
    """Seconds the reply is held back (any kind), on the simulator's clock."""

    def matches(self, method: str, path: str) -> bool:
        return self.path in path and (self.method is None or self.method.upper() == method)

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.kind == "connection_reset":
            return _BrokenReply(httpx2.ReadError("connection reset by peer (simulated fault)"), self.status or 200)
        if self.kind == "read_timeout":
            return _BrokenReply(httpx2.ReadTimeout("timed out reading the reply (simulated fault)"), self.status or 200)
        if self.kind == "malformed_json":
            body = self.body if self.body is not None else '{"code":1,"description":"提交成功","result":"17'
            return Response(body, self.status or 200, headers, "application/json")
        if self.kind == "empty_body":
            return Response(b"", self.status or 200, headers, "application/json")
        if self.kind == "html_error_page":
            status = self.status or 502
            title = f"{status} {_reason(status)}"
            page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )
            return Response(self.body if self.body is not None else page, status, headers, "text/html")
        media = "text/plain; charset=utf-8" if self.body else None
        return Response(self.body or b"", self.status or 500, headers, media)


class _BrokenReply(Response):
    """A reply whose head is sent and whose connection then breaks with `error`."""

    def __init__(self, error: httpx2.TransportError, status: int) -> None:
        super().__init__(status_code=status)
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A promised body that never comes: uvicorn then drops the connection, and the
        # in-process transport passes the error on.
        head = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": self.status_code, "headers": head})
        raise self.error


@runtime_checkable
class _SleepingClock(Protocol):
    """A test's fake clock: time passes when it is asked to sleep."""

    async def sleep(self, seconds: float) -> None: ...


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int | None


class SimulatorOptions(TypedDict, total=False):
    """Keyword options of `Simulator` (also accepted by `run_simulator`)."""

    clock: Callable[[], float]
    api_key: str | None
    job_seconds: float
    quirks: Quirks | None
    seed: int | None


# ---------------------------------------------------------------------------------------------
# Task state


@dataclass(eq=False, slots=True)
class SimTask:
    """What the simulator remembers about a task; its status is derived from the clock."""

    id: str
    seq: int
    action: str
    kind: Kind
    prompt: str | None
    description: str
    submit_ms: int
    base: str
    job_hash: str
    """The Midjourney job UUID; shown as properties.messageHash once the job succeeded."""
    art_key: str
    """Seed of the picture's colours (and of describe's text)."""
    art_text: str
    art_index: int | None = None
    """None: the task's picture is a 2×2 grid; 1..4: one quadrant of `art_key`'s grid."""
    size: tuple[int, int] = (_LONG_SIDE, _LONG_SIDE)
    final_prompt: str | None = None
    result_text: str | None = None
    source_url: str | None = None
    family: str = "7"
    mode: str | None = None
    bot_type: str = "MID_JOURNEY"
    state: str | None = None
    notify_hook: str | None = None
    parent_id: str | None = None
    custom_id: str = ""
    na_action: str | None = None
    na_description: str | None = None
    """new-api's copy: the description of the submit reply that created the task."""
    na_prompt: str | None = None
    """new-api's copy: the prompt of that submit (a button press: the parent's)."""
    extra: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    queued_at: float | None = None
    """When the job entered the queue; None while the task waits in MODAL."""
    queue_delay: float = 0.0
    fails: bool = False
    cancelled_at: float | None = None
    modal_need: ModalNeed | None = None
    notified: str | None = None
    """The "STATUS:progress" of the last callback sent for this task."""


@dataclass(frozen=True, slots=True)
class _Snap:
    status: str
    progress: str | None
    start_ms: int | None
    finish_ms: int | None
    fail_reason: str | None = None


Button = dict[str, str | int]


def _button(custom_id: str, emoji: str = "", label: str = "") -> Button:
    return {"customId": custom_id, "emoji": emoji, "label": label, "style": 2, "type": 2}


def _keycap(n: int) -> str:
    return f"{n}\ufe0f\u20e3"


def _reroll_button(h: str) -> Button:
    return _button(f"MJ::JOB::reroll::0::{h}::SOLO", "🔄")


def _grid_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        *(_button(f"MJ::JOB::upsample::{n}::{h}", label=f"U{n}") for n in range(1, 5)),
        _reroll_button(h),
        *(_button(f"MJ::JOB::variation::{n}::{h}", label=f"V{n}") for n in range(1, 5)),
    ]


# Upscale buttons of a single image, by model family (docs §2.6); v8 has none.
_UPSCALE_FLAVOURS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "4": (("Upscale (2x)", "upsample_v5_2x"), ("Upscale (4x)", "upsample_v5_4x")),
    "5": (("Upscale (2x)", "upsample_v5_2x"), ("Upscale (4x)", "upsample_v5_4x")),
    "6": (("Upscale (Subtle)", "upsample_v6_2x_subtle"), ("Upscale (Creative)", "upsample_v6_2x_creative")),
    "6.1": (
        ("Upscale (Subtle)", "upsample_v6r1_2x_subtle"),
        ("Upscale (Creative)", "upsample_v6r1_2x_creative"),
    ),
    "7": (("Upscale (Subtle)", "upsample_v7_2x_subtle"), ("Upscale (Creative)", "upsample_v7_2x_creative")),
    "8": (),
}
_SPATIAL_FAMILIES: Final = frozenset({"5", "6", "6.1", "7"})
_ANIMATE_FAMILIES: Final = frozenset({"6", "6.1", "7", "8"})


def _vary_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::JOB::low_variation::1::{h}::SOLO", "🪄", "Vary (Subtle)"),
        _button(f"MJ::JOB::high_variation::1::{h}::SOLO", "🪄", "Vary (Strong)"),
    ]


def _zoom_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::Outpaint::50::1::{h}::SOLO", "🔍", "Zoom Out 2x"),
        _button(f"MJ::Outpaint::75::1::{h}::SOLO", "🔍", "Zoom Out 1.5x"),
        _button(f"MJ::CustomZoom::{h}", "🔍", "Custom Zoom"),
    ]


def _animate_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::JOB::animate_high::1::{h}::SOLO", "🎞️", "Animate (High motion)"),
        _button(f"MJ::JOB::animate_low::1::{h}::SOLO", "🎞️", "Animate (Low motion)"),
    ]


def _single_buttons(task: SimTask) -> list[Button]:
    h, family = task.job_hash, task.family
    buttons = [
        _button(f"MJ::JOB::{fragment}::1::{h}::SOLO", "upscale_1", label)
        for label, fragment in _UPSCALE_FLAVOURS[family]
    ]
    buttons += _vary_buttons(h)
    if family in _SPATIAL_FAMILIES:
        buttons.append(_button(f"MJ::Inpaint::1::{h}::SOLO", "🖌️", "Vary (Region)"))
        buttons += _zoom_buttons(h)
        buttons += [
            _button(f"MJ::JOB::pan_{direction}::1::{h}::SOLO", emoji)
            for direction, emoji in (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))
        ]
    if family in _ANIMATE_FAMILIES:
        buttons += _animate_buttons(h)
    buttons.append(_button(f"MJ::BOOKMARK::{h}", "❤️"))
    return buttons


def _hd_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [*_vary_buttons(h), *_zoom_buttons(h), *_animate_buttons(h), _reroll_button(h)]


def _describe_buttons(_task: SimTask) -> list[Button]:
    return [
        *(_button(f"MJ::Job::PicReader::{n}", _keycap(n)) for n in range(1, 5)),
        _button("MJ::Picread::Retry", "🔄"),
        _button("MJ::Job::PicReader::all", "🎉", "Imagine all"),
    ]


def _shorten_buttons(task: SimTask) -> list[Button]:
    return [
        *(_button(f"MJ::Job::PromptAnalyzer::{n}", _keycap(n)) for n in range(1, 6)),
        _button(f"MJ::Job::PromptAnalyzerExtended::{task.job_hash}", "", "Show Details"),
    ]


def _video_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        *(_button(f"MJ::JOB::video_virtual_upscale::{n}::{h}", label=f"U{n}") for n in range(1, 5)),
        _reroll_button(h),
    ]


def _video_upscale_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        _button(f"MJ::JOB::animate_high_extend::1::{h}", "🎞️", "Extend (High motion)"),
        _button(f"MJ::JOB::animate_low_extend::1::{h}", "🎞️", "Extend (Low motion)"),
    ]


def _no_buttons(_task: SimTask) -> list[Button]:
    return []


@dataclass(frozen=True, slots=True)
class _KindSpec:
    """What a kind of job produces."""

    buttons: Callable[[SimTask], list[Button]]
    picture: bool = True
    """Renders its own picture (final PNG, preview while running)."""
    text_result: bool = False
    """The result is text in finalPrompt (describe, shorten)."""
    video: bool = False
    image_urls: bool = False
    """Four `imageUrls` entries (edits; video thumbnails come with videoUrls)."""


_KINDS: Final[dict[Kind, _KindSpec]] = {
    "grid": _KindSpec(_grid_buttons),
    "upscale": _KindSpec(_single_buttons),
    "upscale_hd": _KindSpec(_hd_buttons),
    "describe": _KindSpec(_describe_buttons, picture=False, text_result=True),
    "shorten": _KindSpec(_shorten_buttons, picture=False, text_result=True),
    "video": _KindSpec(_video_buttons, video=True),
    "video_upscale": _KindSpec(_video_upscale_buttons, video=True),
    "edit": _KindSpec(_no_buttons, image_urls=True),
    "swap": _KindSpec(_no_buttons),
}


@dataclass(frozen=True, slots=True)
class _Rule:
    """How `/mj/submit/action` treats a customId (docs §1.3); first matching rule wins."""

    pattern: re.Pattern[str]
    action: str | None
    """The new task's action; None = reroll (depends on the parent)."""
    kind: Kind | None
    na_action: str
    tag: str
    """Description suffix; `{n}` is the button's index."""
    modal: ModalNeed | None = None
    """Always answered with code 21 and a MODAL task needing this."""
    remixable: bool = False
    """Becomes MODAL when the request says `enableRemix: true`."""
    special: Literal["bookmark", "all", "prompt_line"] | None = None


_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(re.compile(r"^MJ::JOB::upsample::(?P<n>[1-4])::"), "UPSCALE", "upscale", "UPSCALE", "U{n}"),
    _Rule(
        re.compile(r"^MJ::JOB::video_virtual_upscale(?:::(?P<n>[1-4]))?"),
        "UPSCALE",
        "video_upscale",
        "UPSCALE",
        "U{n}",
    ),
    _Rule(
        re.compile(r"^MJ::JOB::variation::(?P<n>[1-4])::"),
        "VARIATION",
        "grid",
        "VARIATION",
        "V{n}",
        remixable=True,
    ),
    _Rule(re.compile(r"^MJ::JOB::reroll::"), None, None, "REROLL", "R", remixable=True),
    _Rule(
        re.compile(r"^MJ::JOB::high_variation::"),
        "VARIATION",
        "grid",
        "HIGH_VARIATION",
        "Vary (Strong)",
        remixable=True,
    ),
    _Rule(
        re.compile(r"^MJ::JOB::low_variation::"),
        "VARIATION",
        "grid",
        "LOW_VARIATION",
        "Vary (Subtle)",
        remixable=True,
    ),
    _Rule(re.compile(r"^MJ::Outpaint::"), "ZOOM", "grid", "ZOOM", "Zoom Out"),
    _Rule(re.compile(r"^MJ::JOB::pan_"), "PAN", "grid", "PAN", "Pan", remixable=True),
    _Rule(re.compile(r"^MJ::JOB::upsample_"), "UPSCALE_HD", "upscale_hd", "UPSCALE", "Upscale HD"),
    _Rule(re.compile(r"^MJ::CustomZoom::"), "ZOOM", "grid", "CUSTOM_ZOOM", "Custom Zoom", modal="zoom"),
    _Rule(re.compile(r"^MJ::Inpaint::"), "VARIATION", "grid", "INPAINT", "Vary (Region)", modal="mask"),
    _Rule(re.compile(r"^MJ::JOB::animate_"), "VIDEO", "video", "VIDEO", "Animate", remixable=True),
    _Rule(re.compile(r"MJ::Picread::Retry"), "DESCRIBE", "describe", "DESCRIBE", "Describe retry"),
    _Rule(re.compile(r"^MJ::Job::PicReader::all"), "IMAGINE", "grid", "IMAGINE", "Imagine all", special="all"),
    _Rule(
        re.compile(r"^MJ::Job::PicReader::(?P<n>[1-4])$"),
        "IMAGINE",
        "grid",
        "IMAGINE",
        "PicReader {n}",
        modal="prompt",
        special="prompt_line",
    ),
    _Rule(
        re.compile(r"^MJ::Job::PromptAnalyzer::(?P<n>[1-5])$"),
        "IMAGINE",
        "grid",
        "IMAGINE",
        "PromptAnalyzer {n}",
        modal="prompt",
        special="prompt_line",
    ),
    _Rule(re.compile(r"^MJ::BOOKMARK::"), None, None, "", "Bookmark", special="bookmark"),
)

# Reroll repeats the parent's job (TA `SubmitAction`), except these. Every task with a reroll
# button has an action TA can reroll, so TA's `该任务不支持重新生成` cannot happen here.
_REROLL_AS: Final[dict[str, str]] = {"UPSCALE": "IMAGINE", "SHOW": "IMAGINE"}
_CHANGEABLE: Final = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND"})
_NZ_ACTIONS: Final = frozenset({"IMAGINE", "UPSCALE", "VARIATION", "REROLL", "DESCRIBE", "BLEND"})
_BLEND_RATIOS: Final = {"PORTRAIT": "2:3", "SQUARE": "1:1", "LANDSCAPE": "3:2"}

# new-api (docs §1.1 "NA", `router/relay-router.go`): the MJ routes it relays. The TA aliases
# `/mj/submit/edit` and `/mj/task/list-by-ids`, and list/queue/query/cancel/show, are not among them.
_NA_ROUTES: Final = frozenset(
    {
        "/mj/submit/action",
        "/mj/submit/shorten",
        "/mj/submit/modal",
        "/mj/submit/imagine",
        "/mj/submit/change",
        "/mj/submit/simple-change",
        "/mj/submit/describe",
        "/mj/submit/blend",
        "/mj/submit/edits",
        "/mj/submit/video",
        "/mj/task/{id}/fetch",
        "/mj/task/{id}/image-seed",
        "/mj/task/list-by-condition",
        "/mj/insight-face/swap",
        "/mj/submit/upload-discord-images",
    }
)
# The action new-api records for a submit (`RelayMidjourneySubmit`); /action maps its customId.
_NA_ACTIONS: Final = {
    "imagine": "IMAGINE",
    "describe": "DESCRIBE",
    "edit": "EDITS",
    "shorten": "SHORTEN",
    "blend": "BLEND",
    "upload_images": "UPLOAD",
    "video": "VIDEO",
    "modal": "MODAL",
    "swap_face": "SWAP_FACE",
}
_NA_KEEPS_21: Final = frozenset({"INPAINT", "CUSTOM_ZOOM"})
"""new-api rewrites code 21 to 1 for every action but these."""
_NA_TEXT_FIELDS: Final = (
    "prompt",
    "customId",
    "botType",
    "notifyHook",
    "action",
    "state",
    "taskId",
    "content",
    "maskBase64",
    "sourceBase64",
    "targetBase64",
)
"""String fields of new-api's request DTOs: another JSON type there fails its binding."""
_NA_PAGE: Final = (
    b'<!doctype html><html lang="zh"><head><meta charset="UTF-8" /><title>New API</title></head>'
    b'<body><div id="root"></div></body></html>'
)
"""What new-api answers for a path it does not route: its dashboard's index page, HTTP 200."""


# ---------------------------------------------------------------------------------------------
# Prompt and text helpers


def _model_family(prompt: str) -> str:
    """Which Midjourney version a prompt asks for; it decides the single-image buttons."""
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", prompt)
    if match:
        value = match.group(1)
        major = int(float(value))
        if major >= 8:
            return "8"
        if major == 6:
            return "6.1" if value.startswith("6.1") else "6"
        return {7: "7", 5: "5"}.get(major, "4")
    niji = re.search(r"--niji(?:\s+(\d+))?", prompt)
    if niji:
        return {"7": "7", "6": "6"}.get(niji.group(1) or "6", "5")
    return "7"


def _normalize_prompt(prompt: str, mode: str | None) -> str:
    """The prompt as Midjourney echoes it: with a version, and the speed when one was chosen."""
    text = " ".join(prompt.split())
    if not re.search(r"--(?:v|version|niji)\b", text):
        text += " --v 7"
    if mode and not re.search(r"--(?:fast|relax|turbo)\b", text):
        text += f" --{mode.lower()}"
    return text.strip()


def _prompt_mode(prompt: str) -> str | None:
    match = re.search(r"--(fast|relax|turbo)\b", prompt)
    return match.group(1).upper() if match else None


def _aspect_size(prompt: str) -> tuple[int, int]:
    """Picture size for `--ar W:H` (long side 1024, ratio clamped to 1:4..4:1)."""
    match = re.search(r"--(?:ar|aspect)\s+(\d+)\s*:\s*(\d+)", prompt)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        return (_LONG_SIDE, _LONG_SIDE)
    ratio = min(4.0, max(0.25, int(match.group(1)) / int(match.group(2))))
    if ratio >= 1:
        return (_LONG_SIDE, _even(_LONG_SIDE / ratio))
    return (_even(_LONG_SIDE * ratio), _LONG_SIDE)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _ratio_text(size: tuple[int, int]) -> str:
    divisor = math.gcd(*size) or 1
    return f"{size[0] // divisor}:{size[1] // divisor}"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


_SUBJECTS: Final = (
    "a lighthouse on a rocky coast",
    "a red fox in tall grass",
    "a rain-soaked city street at night",
    "a bowl of ripe peaches on a table",
    "an astronaut floating above the clouds",
    "a cozy reading nook with a cat",
    "a koi pond under autumn maples",
    "a vintage motorcycle in a workshop",
)
_STYLES: Final = (
    "soft watercolor",
    "cinematic photography",
    "isometric 3d render",
    "ukiyo-e woodblock print",
    "flat vector illustration",
    "thick impasto oil painting",
    "pastel anime style",
    "moody film noir",
)
_LIGHTS: Final = (
    "golden hour light",
    "overcast diffuse light",
    "neon rim lighting",
    "warm candlelight",
    "crisp morning sun",
    "dramatic chiaroscuro",
    "bioluminescent glow",
    "blue hour haze",
)


def _describe_text(seed: str, size: tuple[int, int]) -> str:
    """Four Midjourney-style prompts, `1️⃣ …\\n\\n2️⃣ …`, deterministic in `seed`."""
    d = _digest(seed)
    ratio = _ratio_text(size)
    return "\n\n".join(
        f"{_keycap(i + 1)} {_SUBJECTS[d[i] % 8]}, {_STYLES[d[i + 4] % 8]}, {_LIGHTS[d[i + 8] % 8]} --ar {ratio}"
        for i in range(4)
    )


def _shorten_text(prompt: str) -> str:
    """Shorten's markdown: important tokens, then five ever shorter prompts."""
    core = re.sub(r"--\w+(?:\s+[^\s-][^\s]*)?", " ", prompt)
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", core) or ["prompt"]
    important = list(dict.fromkeys(w.lower() for w in words if len(w) > 2))[:6] or [words[0].lower()]
    lines = [f"{_keycap(i)} {' '.join(words[: max(1, math.ceil(len(words) * (6 - i) / 5))])}" for i in range(1, 6)]
    return "## Important tokens\n" + ", ".join(important) + "\n\n## Shortened prompts\n" + "\n\n".join(lines)


def _numbered_line(text: str, n: int) -> str | None:
    for match in _KEYCAP_ITEM.finditer(text):
        if int(match.group(1)) == n:
            return match.group(2).strip()
    return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# ---------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True, slots=True)
class _Blob:
    data: bytes
    mime: str


_EXTENSIONS: Final = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _decode_base64(value: str) -> _Blob | None:
    """A data URI or bare base64 string as bytes; None when it is not valid base64."""
    mime: str | None = None
    payload = value.strip()
    match = _DATA_URI.match(payload)
    if match:
        mime, payload = match.group(1), match.group(2)
    elif payload.startswith("data:"):
        return None
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data:
        return None
    return _Blob(data, mime or _sniff(data))


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (int(r * 255), int(g * 255), int(b * 255))


def _tile(key: str, text: str, n: int, size: tuple[int, int], font_px: int) -> Image.Image:
    """One quadrant: a colour and a disc derived from (key, n), the prompt and the number."""
    from PIL import Image, ImageDraw

    w, h = size
    d = _digest(f"{key}#{n}")
    hue = d[0] / 255
    background = _colour(hue, 0.45 + d[1] / 850, 0.62 + d[2] / 910)
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    radius = int(min(w, h) * (0.18 + d[3] / 2125))
    cx, cy = int(w * (0.3 + d[4] / 640)), int(h * (0.3 + d[5] / 640))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=_colour(hue + 0.5, 0.55, 0.9))
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (20, 20, 24) if luminance > 140 else (245, 245, 245)
    margin = max(4, font_px // 2)
    draw.text((margin, margin), str(n), font=_font(font_px * 3), fill=ink)
    chars = max(8, int((w - 2 * margin) / (font_px * 0.55)))
    lines = textwrap.wrap(text, width=chars)[:6] or [""]
    block = "\n".join(lines)
    line_height = int(font_px * 1.25)
    draw.multiline_text(
        (margin, h - margin - line_height * len(lines)), block, font=_font(font_px), fill=ink, spacing=font_px // 4
    )
    return img


def _render_picture(key: str, text: str, index: int | None, size: tuple[int, int]) -> Image.Image:
    from PIL import Image

    if index is not None:
        return _tile(key, text, index, size, font_px=max(12, min(size) // 16))
    half = (size[0] // 2, size[1] // 2)
    grid = Image.new("RGB", size)
    for n in range(1, 5):
        tile = _tile(key, text, n, half, font_px=max(10, min(half) // 14))
        grid.paste(tile, (((n - 1) % 2) * half[0], ((n - 1) // 2) * half[1]))
    return grid


def _encode(img: Image.Image, fmt: Literal["PNG", "WEBP"]) -> bytes:
    buffer = io.BytesIO()
    if fmt == "PNG":
        img.save(buffer, "PNG", compress_level=1)
    else:
        img.save(buffer, "WEBP", quality=50)
    return buffer.getvalue()


def _preview(img: Image.Image) -> Image.Image:
    from PIL import ImageFilter

    return img.reduce(_PREVIEW_DIVISOR).filter(ImageFilter.GaussianBlur(6))


def _draw_variant(key: str, text: str, index: int | None, size: tuple[int, int], variant: str) -> tuple[bytes, str]:
    """(bytes, media type) of one served picture: "final", "preview" (blurred WebP) or quadrant "1".."4"."""
    if variant in ("final", "preview"):
        img = _render_picture(key, text, index, size)
    else:
        quadrant = (size[0] // 2, size[1] // 2) if index is None else size
        img = _render_picture(key, text, int(variant), quadrant)
    if variant == "preview":
        return _encode(_preview(img), "WEBP"), "image/webp"
    return _encode(img, "PNG"), "image/png"


# ---------------------------------------------------------------------------------------------
# Request plumbing


class _Answer(Exception):
    """Raised by a handler to end the request with this response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(slots=True)
class _Call:
    request: Request
    mode: str | None
    path: str
    params: dict[str, str]
    body: bytes | None = None
    """The body as forwarded by a gateway in front (new-api), instead of the request's own."""

    @property
    def base(self) -> str:
        return str(self.request.base_url).rstrip("/")


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value.strip() if isinstance(value, str) else ""


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


# ---------------------------------------------------------------------------------------------
# The simulator


Handler = Callable[[_Call], Awaitable[Response]]


class Simulator:
    """The fake upstream. `sim.app` is the ASGI app; `sim.transport()` plugs it into httpx2."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        api_key: str | None = None,
        job_seconds: float = 8.0,
        quirks: Quirks | None = None,
        seed: int | None = None,
    ) -> None:
        if job_seconds < 0:
            raise ValueError("job_seconds must not be negative")
        self.clock = clock
        self.api_key = api_key or None
        self.job_seconds = job_seconds
        self.quirks = quirks if quirks is not None else Quirks()
        self.tasks: dict[str, SimTask] = {}
        self.request_log: list[tuple[str, str]] = []
        """(method, path as received) of every request, mode prefix included."""
        self.mode_log: list[str | None] = []
        """The speed mode of every request in `request_log` (FAST/RELAX/TURBO or None)."""
        self._rng = random.Random(seed)  # noqa: S311 - ids and hashes, not secrets
        self._faults: list[_Armed] = []
        self._uploads: OrderedDict[str, _Blob] = OrderedDict()
        self._images: OrderedDict[tuple[str, str], tuple[bytes, str]] = OrderedDict()
        self._seq = 0
        handlers: dict[str, Handler] = {
            "imagine": self._imagine,
            "blend": self._blend,
            "describe": self._describe,
            "shorten": self._shorten,
            "action": self._action,
            "modal": self._modal,
            "swap_face": self._swap_face,
            "video": self._video,
            "edit": self._edit,
            "upload_images": self._upload,
            "show": self._show,
            "change": self._change,
            "simple_change": self._simple_change,
            "get_task": self._fetch,
            "list_tasks": self._list_by_condition,
            "query_tasks": self._query,
            "recent_tasks": self._recent,
            "task_queue": self._queue,
            "image_seed": self._image_seed,
            "cancel_task": self._cancel,
        }
        routes = [(e.method, e.path, e.name) for e in ENDPOINTS.values()]
        routes += [("POST", "/mj/submit/edit", "edit"), ("POST", "/mj/task/list-by-ids", "list_tasks")]
        self._routes: list[tuple[str, str, re.Pattern[str], str, Handler]] = [
            (method, path, _path_pattern(path), name, handlers[name]) for method, path, name in routes
        ]
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])],
            max_body_size=_MAX_BODY,
        )

    # -- public helpers -----------------------------------------------------------------------

    def transport(self) -> httpx2.ASGITransport:
        """An httpx2 transport that calls the app in-process."""
        return httpx2.ASGITransport(app=self.app)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each replaces the reply of the next `times` matching requests."""
        for fault in faults:
            self._faults.append(_Armed(fault, fault.times))

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return [armed.fault for armed in self._faults]

    def snapshot(self, task_id: str) -> dict[str, Any]:
        """The task as `fetch` would return it now (KeyError if unknown)."""
        return self._view(self.tasks[task_id])

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        fault = self._take_fault(method, path)
        if fault is not None:
            await self._hold(fault.delay)
            if fault.kind == "connect_error":
                raise httpx2.ConnectError("connection refused (simulated fault)")
        self.request_log.append((method, path))
        prefix = _MODE_PREFIX.match(path)
        mode = (prefix.group(1) or prefix.group(2)).upper() if prefix else None
        self.mode_log.append(mode)
        inner = path[prefix.end() :] if prefix else path
        if fault is not None and fault.kind == "slow":
            fault = None  # the normal reply, only late
        if fault is not None and not fault.process_request:
            return fault.response()
        try:
            response = await self._route(request, method, inner, mode)
        except _Answer as answer:
            response = answer.response
        return fault.response() if fault is not None else response

    async def _hold(self, seconds: float) -> None:
        """Let `seconds` pass on the simulator's clock (really waiting only on the real one)."""
        if seconds <= 0:
            return
        if isinstance(self.clock, _SleepingClock):
            await self.clock.sleep(seconds)
        elif isinstance(self.clock, ManualClock):
            self.clock.advance(seconds)
        else:
            await anyio.sleep(seconds)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for armed in self._faults:
            if armed.fault.matches(method, path):
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._faults.remove(armed)
                return armed.fault
        return None

    async def _route(self, request: Request, method: str, path: str, mode: str | None) -> Response:
        if mode is None:
            if path == "/health" and method == "GET":
                return JSONResponse({"status": "ok"})
            if path.startswith("/sim/") and method == "GET":
                return await self._serve_sim(path)
            na_image = re.fullmatch(r"/mj/image/([^/]+)", path)
            if na_image and method == "GET":
                return await self._serve_na_image(na_image.group(1))
        if not path.startswith("/mj/"):
            return Response(status_code=404)
        found = self._find_route(method, path)
        if self._new_api and (not isinstance(found, tuple) or found[3] not in _NA_ROUTES):
            # No such route in new-api: the catch-all of its web UI answers with the dashboard.
            return Response(_NA_PAGE, 200, media_type="text/html; charset=utf-8")
        if not self._authorized(request):
            return self._unauthorized()
        if found == "wrong_method":
            return self._spring_error(405, path)
        if found is None:
            return Response(status_code=404)
        name, handler, params, _template = found
        if name == "list_tasks" and not self.quirks.list_by_condition:
            return Response(status_code=404)
        call = _Call(request, mode, path, params)
        if self._new_api:
            return await self._via_new_api(call, name, handler)
        return await handler(call)

    def _find_route(
        self, method: str, path: str
    ) -> tuple[str, Handler, dict[str, str], str] | Literal["wrong_method"] | None:
        """(name, handler, path parameters, path template) of the route, or why there is none."""
        wrong_method = False
        for route_method, template, pattern, name, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                wrong_method = True
                continue
            return name, handler, match.groupdict(), template
        return "wrong_method" if wrong_method else None

    @property
    def _new_api(self) -> bool:
        return self.quirks.new_api or self.quirks.trimmed_tasks

    def _authorized(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        headers = request.headers
        dialect = self.quirks.auth
        if dialect == "nz":
            return _same(headers.get("mj-api-secret", ""), self.api_key)
        if dialect == "ta":
            # TA's WorkContext: Authorization when the header is there at all, raw.
            token = headers["authorization"] if "authorization" in headers else headers.get("mj-api-secret", "")
            return _same(token, self.api_key)
        if dialect == "new-api":
            # new-api's TokenAuth: its keys are "sk-" + the token; a further "-…" picks a channel.
            key = _strip_bearer(headers.get("authorization", ""))
            if key in ("", "midjourney-proxy"):
                key = _strip_bearer(headers.get("mj-api-secret", ""))
            key = key.removeprefix("sk-").split("-")[0]
            return _same(key, self.api_key.removeprefix("sk-"))
        authorization = headers.get("authorization", "").strip()
        candidates = {authorization, headers.get("mj-api-secret", "").strip()}
        if authorization[:7].lower() == "bearer ":
            candidates.add(authorization[7:].strip())
        return any(_same(c, self.api_key) for c in candidates)

    def _unauthorized(self) -> Response:
        dialect = self.quirks.auth
        if dialect == "ta" or (dialect == "any" and self.quirks.auth_plain_text):
            return Response(MSG_TA_UNAUTHORIZED, 401, media_type="text/plain")
        if dialect == "new-api":
            stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%d%H%M%S")
            message = f"{NA_INVALID_TOKEN} (request id: {stamp}{secrets.token_hex(4)})"
            return JSONResponse({"error": {"message": message, "type": "new_api_error", "code": ""}}, 401)
        return Response(status_code=401)

    # -- replies ------------------------------------------------------------------------------

    def _spring_error(self, status: int, path: str) -> Response:
        stamp = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="milliseconds")
        return JSONResponse(
            {"timestamp": stamp, "status": status, "error": _reason(status), "path": path}, status_code=status
        )

    def _bad_request(self, call: _Call) -> NoReturn:
        raise _Answer(self._spring_error(400, call.path))

    @staticmethod
    def _envelope(
        code: int,
        description: str,
        result: Any = None,
        properties: Mapping[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        body = {"code": code, "description": description, "result": result, "properties": dict(properties or {})}
        return JSONResponse(body, status_code=status)

    def _reject(self, description: str, code: int = CODE_VALIDATION, **properties: Any) -> NoReturn:
        raise _Answer(self._envelope(code, description, None, properties))

    def _task_missing(self) -> NoReturn:
        raise _Answer(self._envelope(CODE_NOT_FOUND, MSG_NOT_FOUND, status=404))

    def _result_id(self, task_id: str) -> str | int:
        return int(task_id) if self.quirks.result_as_number and task_id.isdigit() else task_id

    def _accepted(self, task_id: str) -> Response:
        properties: dict[str, Any] = {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
        ahead = self.quirks.queue_position
        if ahead > 0:
            properties["numberOfQueues"] = ahead
            return self._envelope(CODE_IN_QUEUE, f"排队中，前面还有{ahead}个任务", self._result_id(task_id), properties)
        return self._envelope(CODE_SUCCESS, MSG_OK, self._result_id(task_id), properties)

    def _modal_reply(self, task: SimTask) -> Response:
        return self._envelope(
            CODE_EXISTED_MODAL, MSG_MODAL, self._result_id(task.id), {"finalPrompt": task.prompt, "remix": True}
        )

    # -- request parsing ----------------------------------------------------------------------

    async def _body(
        self, call: _Call, model: type[WireModel], *, required: bool = True, keep: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The JSON object of the request, reduced to `model`'s fields (plus `keep`) under their
        wire names, so that the upstream's own checks can read it before the model does."""
        raw = call.body if call.body is not None else await call.request.body()
        if not raw.strip():
            if required:
                self._bad_request(call)
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            self._bad_request(call)
        if not isinstance(data, dict):
            self._bad_request(call)
        return _lenient(model, data, keep)  # pyright: ignore[reportUnknownArgumentType]

    def _validate(self, call: _Call, model: type[_M], raw: Mapping[str, Any], *, submit: bool = True) -> _M:
        """The request model; a wrong type or enum value is Spring's 400, a broken constraint
        (too long, out of range) a code 4 on submits."""
        try:
            return model.model_validate(_lenient(model, raw))
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            if not submit or any(e["type"] in _BIND_ERRORS for e in errors):
                self._bad_request(call)
            first = errors[0]
            where = ".".join(str(part) for part in first["loc"])
            self._reject(f"{MSG_PARAM}: {where} {first['msg']}")

    def _blob(self, value: str) -> _Blob:
        """A base64 image field (data URI or bare base64) as bytes; code 4 when it is not."""
        blob = _decode_base64(value)
        if blob is None:
            self._reject(MSG_BASE64)
        return blob

    def _blob_or_url(self, value: str) -> _Blob | str:
        """`image` of video/edits: TA also takes an http(s) URL, passed on as it is."""
        return value if re.match(r"^https?://", value, re.IGNORECASE) else self._blob(value)

    def _store(self, base: str, image: _Blob | str) -> str:
        """Keep an uploaded image (bounded) and return the absolute URL serving it."""
        if isinstance(image, str):
            return image
        name = f"upload_{hashlib.sha256(image.data).hexdigest()[:20]}.{_EXTENSIONS.get(image.mime, 'bin')}"
        self._uploads[name] = image
        self._uploads.move_to_end(name)
        while len(self._uploads) > _UPLOAD_LIMIT:
            self._uploads.popitem(last=False)
        return f"{base}/sim/uploads/{name}"

    def _check_banned(self, prompt: str) -> None:
        lowered = prompt.lower()
        for word in self.quirks.banned_words:
            if word and word.lower() in lowered:
                self._reject(MSG_BANNED, CODE_BANNED_PROMPT, promptEn=prompt, bannedWord=word)

    def _check_queue(self) -> None:
        if self.quirks.no_account:
            self._reject(MSG_NO_ACCOUNT, CODE_NOT_FOUND)
        if self.quirks.queue_full == "9":
            self._reject(MSG_QUEUE_FULL_TA, CODE_FAILURE)
        if self.quirks.queue_full == "23":
            self._reject(MSG_QUEUE_FULL_NZ, CODE_QUEUE_REJECTED)

    # -- task creation ------------------------------------------------------------------------

    def _new_id(self) -> str:
        ms = int(self.clock() * 1000)
        while True:
            for _ in range(50):
                candidate = f"{ms:013d}{self._rng.randrange(1000):03d}"
                if candidate not in self.tasks:
                    return candidate
            ms += 1

    def _new_hash(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _create(
        self,
        call: _Call,
        *,
        action: str,
        kind: Kind,
        prompt: str | None,
        description: str,
        art_text: str,
        art_key: str | None = None,
        job_hash: str | None = None,
        modes: Iterable[str] | None = None,
        bot_type: str | None = None,
        queued: bool = True,
        **fields: Any,
    ) -> SimTask:
        """Register a task (queued now, unless it waits in MODAL) and return it."""
        task_id = self._new_id()
        self._seq += 1
        text = prompt or ""
        mode = call.mode or next(iter(modes or ()), None) or _prompt_mode(text)
        if bot_type is None:
            bot_type = "NIJI_JOURNEY" if "--niji" in text else "MID_JOURNEY"
        task = SimTask(
            id=task_id,
            seq=self._seq,
            action=action,
            kind=kind,
            prompt=prompt,
            description=description.replace("{id}", task_id),
            submit_ms=int(self.clock() * 1000),
            base=call.base,
            job_hash=job_hash or self._new_hash(),
            art_key=art_key if art_key is not None else f"{text}/{task_id}",
            art_text=art_text,
            size=_aspect_size(text),
            final_prompt=_normalize_prompt(text, mode) if text else None,
            family=_model_family(text),
            mode=mode,
            bot_type=bot_type,
            fails=bool(self.quirks.failing_marker) and self.quirks.failing_marker in text,
            **fields,
        )
        if queued:
            self._enqueue(task)
        self.tasks[task_id] = task
        return task

    def _enqueue(self, task: SimTask) -> None:
        task.queued_at = self.clock()
        task.queue_delay = max(0, self.quirks.queue_position) * _STARTED_AT * self.job_seconds

    # -- the lifecycle ------------------------------------------------------------------------

    def _snapshot(self, task: SimTask, at: float | None = None) -> _Snap:
        """Where the task is now (or was `at` then); all timing is derived here, from the clock."""
        now = self.clock() if at is None else at
        cancelled_at = task.cancelled_at if task.cancelled_at is not None and task.cancelled_at <= now else None
        if cancelled_at is not None:
            now = cancelled_at
        if task.queued_at is None or (task.modal_need is not None and now < task.queued_at):
            if cancelled_at is not None:
                return _Snap("FAILURE", "", None, _ms(cancelled_at), CANCEL_REASON)
            return _Snap("MODAL", None, None, None)
        j = self.job_seconds
        t0 = task.queued_at + task.queue_delay
        elapsed = now - t0
        if task.fails and elapsed >= _FAIL_AT * j:
            return _Snap("FAILURE", "", _ms(t0 + _STARTED_AT * j), _ms(t0 + _FAIL_AT * j), FAIL_REASON)
        status, progress = "NOT_START", None
        for at, phase_status, phase_progress in _PHASES:
            if elapsed < at * j:
                break
            status, progress = phase_status, phase_progress
        start = _ms(t0 + _STARTED_AT * j) if status != "NOT_START" else None
        if cancelled_at is not None:
            return _Snap("FAILURE", "", start, _ms(cancelled_at), CANCEL_REASON)
        finish = _ms(t0 + j) if status == "SUCCESS" else None
        return _Snap(status, progress, start, finish)

    # -- views --------------------------------------------------------------------------------

    def _picture_path(self, task: SimTask, snap: _Snap) -> str | None:
        """The task's imageUrl now, relative to the simulator (or an external URL)."""
        spec = _KINDS[task.kind]
        if task.kind == "describe":
            return task.source_url
        if not spec.picture:
            return None
        if snap.status == "IN_PROGRESS":
            return f"/sim/images/{task.id}/preview.webp"
        if snap.status != "SUCCESS":
            return None
        if spec.video and task.source_url:
            return task.source_url
        return f"/sim/images/{task.id}.png"

    def _absolute(self, task: SimTask, path: str | None) -> str | None:
        if path is None or not path.startswith("/"):
            return path
        return task.base + path

    def _view(self, task: SimTask) -> dict[str, Any]:
        """The task as a fetch shows it: the upstream's, or new-api's copy of it."""
        if self._new_api:
            return self._trimmed_view(task)
        return self._full_view(task, self._snapshot(task))

    def _full_view(self, task: SimTask, snap: _Snap) -> dict[str, Any]:
        """TA / PLUS Task JSON: every field present, null when unset."""
        spec = _KINDS[task.kind]
        success = snap.status == "SUCCESS"
        properties: dict[str, Any] = {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
        if task.notify_hook:
            properties["notifyHook"] = task.notify_hook
        properties.update(task.extra)
        if spec.text_result:
            if success:
                properties["finalPrompt"] = task.result_text
        elif task.final_prompt is not None and snap.status in ("MODAL", "IN_PROGRESS", "SUCCESS"):
            properties["finalPrompt"] = task.final_prompt
        if task.queued_at is None and snap.status == "MODAL":
            properties["remix"] = True
        if success:
            properties["messageHash"] = task.job_hash
        prompt = task.result_text if task.kind == "describe" and success else task.prompt
        image_urls: list[dict[str, str]] | None = None
        video_url: str | None = None
        video_urls: list[dict[str, str]] | None = None
        if success and spec.image_urls:
            image_urls = [{"url": f"{task.base}/sim/images/{task.id}/{n}.png"} for n in range(1, 5)]
        if success and spec.video:
            count = 1 if task.kind == "video_upscale" else 4
            video_urls = [
                {
                    "url": f"{task.base}/sim/videos/{task.id}/{i}.mp4",
                    "thumbnail": f"{task.base}/sim/images/{task.id}/{i + 1}.png",
                }
                for i in range(count)
            ]
            video_url = video_urls[0]["url"]
        has_size = success and spec.picture
        return {
            "id": task.id,
            "action": task.action,
            "status": snap.status,
            "prompt": prompt,
            "promptEn": prompt,
            "description": task.description,
            "state": task.state,
            "submitTime": task.submit_ms,
            "startTime": snap.start_ms,
            "finishTime": snap.finish_ms,
            "imageUrl": self._absolute(task, self._picture_path(task, snap)),
            "imageUrls": image_urls,
            "videoUrl": video_url,
            "videoUrls": video_urls,
            "progress": snap.progress,
            "failReason": snap.fail_reason,
            "properties": properties,
            "buttons": spec.buttons(task) if success else [],
            "mode": task.mode,
            "botType": task.bot_type,
            "parentId": task.parent_id,
            "imageWidth": task.size[0] if has_size else None,
            "imageHeight": task.size[1] if has_size else None,
            "baseImageUrl": task.source_url if task.kind == "edit" else None,
        }

    def _na_copy(self, task: SimTask) -> _Snap | None:
        """new-api's copy of the task: the upstream at its last read (None: not read yet).

        Its poller reads every `new_api_poll` seconds; it fails a task that is not at 100% an
        hour after its submit, and sets a failed task's progress to "100%" (docs §2.4, §4.3).
        """
        now = self.clock()
        every = self.quirks.new_api_poll
        at = math.floor(now / every) * every if every > 0 else now
        if _ms(at) < task.submit_ms:
            return None
        snap = self._snapshot(task, at)
        if at - task.submit_ms / 1000 > NA_TASK_TIMEOUT and snap.status not in ("SUCCESS", "FAILURE"):
            return _Snap("FAILURE", "100%", snap.start_ms, snap.finish_ms, NA_TIMEOUT_REASON)
        if every <= 0 and snap.status == "NOT_START":
            return None
        if snap.status == "FAILURE":
            return _Snap("FAILURE", "100%", snap.start_ms, snap.finish_ms, snap.fail_reason)
        return snap

    def _trimmed_view(self, task: SimTask) -> dict[str, Any]:
        """new-api's Task (docs §2.1 "NA view", `coverMidjourneyTaskDto`): fixed keys, "" and 0
        for nothing; action, prompt and description are what it recorded at the submit, the rest
        is its copy of the upstream's task (customId, botType and maskBase64 it never fills)."""
        view: dict[str, Any] = {
            "id": task.id,
            "action": task.na_action or task.action,
            "customId": "",
            "botType": "",
            "prompt": task.na_prompt if task.na_prompt is not None else (task.prompt or ""),
            "promptEn": "",
            "description": task.na_description if task.na_description is not None else MSG_OK,
            "state": "",
            "submitTime": task.submit_ms,
            "startTime": 0,
            "finishTime": 0,
            "imageUrl": "",
            "videoUrl": "",
            "videoUrls": None,
            "status": "",
            "progress": "0%",
            "failReason": "",
            "buttons": None,
            "maskBase64": "",
            "properties": None,
        }
        snap = self._na_copy(task)
        if snap is None:
            # Its own record, before its first read of the upstream.
            return view
        full = self._full_view(task, snap)
        image_url = full["imageUrl"] or ""
        if image_url:
            # new-api rewrites result links to its own image proxy (MjForwardUrlEnabled).
            image_url = f"{task.base}/mj/image/{task.id}"
            if snap.status != "SUCCESS":
                image_url += f"?rand={int(self.clock() * 1e9)}"
        video_urls = full["videoUrls"]
        view.update(
            {
                "promptEn": full["promptEn"] or "",
                "state": full["state"] or "",
                "startTime": snap.start_ms or 0,
                "finishTime": snap.finish_ms or 0,
                "imageUrl": image_url,
                "videoUrl": full["videoUrl"] or "",
                "videoUrls": [{"url": v["url"]} for v in video_urls] if video_urls else None,
                "status": snap.status,
                "progress": snap.progress or "",
                "failReason": snap.fail_reason or "",
                "buttons": full["buttons"],
                "properties": {"finalPrompt": full["properties"].get("finalPrompt") or "", "finalZhPrompt": ""},
            }
        )
        return view

    # -- new-api in front ---------------------------------------------------------------------

    def _na_error(self, description: str, code: int = CODE_VALIDATION) -> NoReturn:
        """new-api's own refusal (`controller/relay.go` `RelayMidjourney`): HTTP 400, "<reason> <result>"."""
        body = {"code": code, "description": f"{description} ", "type": "upstream_error"}
        raise _Answer(JSONResponse(body, status_code=400))

    def _na_action_of(self, custom_id: str) -> str:
        """new-api's `CoverPlusActionToNormalAction`: its action name for a button, or its refusal."""
        if not custom_id:
            self._na_error("custom_id_is_required")
        parts = custom_id.split("::")
        if len(parts) < 2 or (parts[1] == "JOB" and len(parts) < 3):
            raise _Answer(Response(status_code=500))  # Go: index out of range; gin's recovery
        word = parts[2] if parts[1] == "JOB" else parts[1]
        if not word:
            self._na_error("unknown_action")
        if "upsample" in word or word == "variation":
            if len(parts) < 4:
                raise _Answer(Response(status_code=500))
            try:
                int(parts[3])
            except ValueError:
                self._na_error("index_parse_failed")
            return "UPSCALE" if "upsample" in word else "VARIATION"
        if "variation" in word:
            return {"low_variation": "LOW_VARIATION", "high_variation": "HIGH_VARIATION"}.get(word, "")
        if "pan" in word:
            return "PAN"
        if "reroll" in word:
            return "REROLL"
        named = {"Outpaint": "ZOOM", "CustomZoom": "CUSTOM_ZOOM", "Inpaint": "INPAINT"}.get(word)
        if named is None:
            self._na_error(f"unknown_action:{custom_id}")
        return named

    async def _via_new_api(self, call: _Call, name: str, handler: Handler) -> Response:
        """The request as new-api relays it to this upstream (`relay/mjproxy_handler.go`).

        Reads of a task answer from its copy; submits pass its own checks, lose `notifyHook` and
        `accountFilter` (MjNotifyEnabled / MjAccountFilterEnabled are off by default), and the
        reply comes back as the upstream sent it, codes 21 and 22 rewritten to 1.
        """
        if name in ("get_task", "image_seed"):
            task = self.tasks.get(call.params["id"])
            if task is None:
                self._na_error("task_no_found")
            return JSONResponse(self._view(task)) if name == "get_task" else await handler(call)
        try:
            data = json.loads(await call.request.body())
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            self._na_error("do_request_failed" if name == "list_tasks" else "bind_request_body_failed")
        body = cast(dict[str, Any], data)
        if name == "list_tasks":
            return await handler(call)
        # Go's encoding/json matches keys case-insensitively; a wrong JSON type fails the binding.
        fields = {key.lower(): value for key, value in body.items()}
        for key in _NA_TEXT_FIELDS:
            value = fields.get(key.lower())
            if value is not None and not isinstance(value, str):
                self._na_error("bind_request_body_failed")
        index = fields.get("index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            self._na_error("bind_request_body_failed")

        def text(key: str) -> str:
            value = fields.get(key.lower())
            return value if isinstance(value, str) else ""

        action = self._na_action_of(text("customId")) if name == "action" else _NA_ACTIONS.get(name, "")
        prompt = "InsightFace" if name == "swap_face" else text("prompt")
        if name == "imagine" and not prompt:
            self._na_error("prompt_is_required")
        if name == "swap_face" and not (text("sourceBase64") and text("targetBase64")):
            self._na_error("sour_base64_and_target_base64_is_required")
        # Calls on an existing task are checked against new-api's own records first.
        task_id = text("taskId")
        if task_id and name in ("action", "change", "modal", "video"):
            if name == "change":
                action = text("action")
                if not action:
                    self._na_error("action_is_required")
                if not index:
                    self._na_error("index_is_required")
            parent = self.tasks.get(task_id)
            if parent is None:
                self._na_error("task_not_found")
            if name != "modal":
                copy = self._na_copy(parent)
                if copy is None or copy.status != "SUCCESS":
                    self._na_error("task_status_not_success")
            prompt = parent.na_prompt if parent.na_prompt is not None else (parent.prompt or "")
        forwarded = {key: value for key, value in body.items() if key not in ("notifyHook", "accountFilter")}
        call.body = json.dumps(forwarded, ensure_ascii=False).encode()
        try:
            response = await handler(call)
        except _Answer as answer:
            return answer.response  # the upstream's refusal, passed on as it came
        content = bytes(response.body)
        reply = json.loads(content)
        if not isinstance(reply, dict):
            return response
        reply = cast(dict[str, Any], reply)
        code, result = reply.get("code"), reply.get("result")
        if code in (CODE_SUCCESS, CODE_EXISTED_MODAL, CODE_IN_QUEUE) and isinstance(result, str | int):
            task = self.tasks.get(str(result))
            if task is not None and task.na_description is None:
                # new-api shows the first record it made for an id (a modal call makes a second).
                task.na_description = str(reply.get("description") or "")
                task.na_action = action
                task.na_prompt = prompt
        if name == "swap_face":
            return response  # relayed through RelaySwapFace, which rewrites nothing
        # String replacement on the reply, as new-api does it.
        if code == CODE_EXISTED_MODAL and action not in _NA_KEEPS_21:
            content = content.replace(b'"code":21', b'"code":1')
        if code == CODE_IN_QUEUE:
            content = content.replace(b'"code":22', b'"code":1')
        return Response(content, response.status_code, media_type="application/json")

    # -- submit endpoints ---------------------------------------------------------------------

    async def _imagine(self, call: _Call) -> Response:
        raw = await self._body(call, ImagineRequest)
        if not _text(raw, "prompt"):
            self._reject(MSG_PROMPT_EMPTY)
        req = self._validate(call, ImagineRequest, raw)
        self._check_banned(req.prompt)
        images = [self._blob(v) for v in req.base64_array or []]
        self._check_queue()
        prompt = " ".join([*(self._store(call.base, i) for i in images), req.prompt])
        # TA: `--video` in an imagine prompt makes it a video job.
        video = re.search(r"--video\b", req.prompt) is not None
        task = self._create(
            call,
            action="VIDEO" if video else "IMAGINE",
            kind="video" if video else "grid",
            prompt=prompt,
            description=f"/imagine {prompt}",
            art_text=req.prompt,
            modes=req.modes,
            bot_type=req.bot_type,
            state=req.state,
            notify_hook=req.notify_hook,
        )
        return self._accepted(task.id)

    async def _blend(self, call: _Call) -> Response:
        raw = await self._body(call, BlendRequest)
        images = raw.get("base64Array")
        if not isinstance(images, list) or not 2 <= len(images) <= 5:  # pyright: ignore[reportUnknownArgumentType]
            self._reject("图片参数错误，2~5张图片")
        req = self._validate(call, BlendRequest, raw)
        blobs = [self._blob(v) for v in req.base64_array]
        self._check_queue()
        ratio = _BLEND_RATIOS[req.dimensions or "SQUARE"]
        prompt = " ".join(self._store(call.base, b) for b in blobs) + f" --ar {ratio}"
        task = self._create(
            call,
            action="BLEND",
            kind="grid",
            prompt=prompt,
            description=f"/blend {{id}} {len(blobs)}",
            art_text=f"blend of {len(blobs)} images",
            modes=req.modes,
            bot_type=req.bot_type,
            state=req.state,
            notify_hook=req.notify_hook,
        )
        return self._accepted(task.id)

    async def _describe(self, call: _Call) -> Response:
        raw = await self._body(call, DescribeRequest)
        if not _text(raw, "base64"):
            self._reject("base64不能为空")
        req = self._validate(call, DescribeRequest, raw)
        blob = self._blob(req.base64)
        self._check_queue()
        size = _image_size(blob.data) or (_LONG_SIDE, _LONG_SIDE)
        key = hashlib.sha256(blob.data).hexdigest()
        task = self._create(
            call,
            action="DESCRIBE",
            kind="describe",
            prompt=None,
            description="/describe {id}.png",
            art_text="",
            art_key=key,
            modes=req.modes,
            bot_type=req.bot_type,
            state=req.state,
            notify_hook=req.notify_hook,
            source_url=self._store(call.base, blob),
            result_text=_describe_text(key, size),
        )
        task.size = size
        return self._accepted(task.id)

    async def _shorten(self, call: _Call) -> Response:
        raw = await self._body(call, ShortenRequest)
        if not _text(raw, "prompt"):
            self._reject(MSG_PROMPT_EMPTY)
        req = self._validate(call, ShortenRequest, raw)
        self._check_banned(req.prompt)
        self._check_queue()
        task = self._create(
            call,
            action="SHORTEN",
            kind="shorten",
            prompt=req.prompt,
            description=f"/shorten {req.prompt}",
            art_text=req.prompt,
            modes=req.modes,
            bot_type=req.bot_type,
            state=req.state,
            notify_hook=req.notify_hook,
            result_text=_shorten_text(req.prompt),
        )
        return self._accepted(task.id)

    async def _swap_face(self, call: _Call) -> Response:
        raw = await self._body(call, SwapFaceRequest)
        source, target = _text(raw, "sourceBase64"), _text(raw, "targetBase64")
        if not source:
            self._reject("人脸图片不能为空")
        if not target:
            self._reject("目标图片不能为空")
        if source == target:
            self._reject("人脸图片和目标图片不能相同")
        req = self._validate(call, SwapFaceRequest, raw)
        face, picture = self._blob(req.source_base64), self._blob(req.target_base64)
        self._check_queue()
        self._store(call.base, face)
        target_url = self._store(call.base, picture)
        task = self._create(
            call,
            action="SWAP_FACE",
            kind="swap",
            prompt=None,
            description="/swap_face",
            art_text="face swap",
            bot_type="INSIGHT_FACE",
            state=req.state,
            notify_hook=req.notify_hook,
            source_url=target_url,
        )
        return self._accepted(task.id)

    async def _video(self, call: _Call) -> Response:
        raw = await self._body(call, VideoRequest)
        if not _text(raw, "prompt"):
            self._reject("Prompt 不能为空")
        req = self._validate(call, VideoRequest, raw)
        self._check_banned(req.prompt)
        image = self._blob_or_url(req.image) if req.image else None
        self._check_queue()
        first_frame = self._store(call.base, image) if image is not None else None
        motion = req.motion or "low"
        task = self._create(
            call,
            action="VIDEO",
            kind="video",
            prompt=req.prompt,
            description=f"/video {req.prompt}",
            art_text=req.prompt,
            state=req.state,
            notify_hook=req.notify_hook,
            source_url=first_frame,
        )
        echoed = f"{first_frame or ''} {req.prompt} --video 1 --motion {motion}"
        task.final_prompt = _normalize_prompt(echoed, task.mode)
        return self._accepted(task.id)

    async def _edit(self, call: _Call) -> Response:
        raw = await self._body(call, EditsRequest)
        if not _text(raw, "prompt") or not _text(raw, "image"):
            self._reject("image或prompt不能为空")
        req = self._validate(call, EditsRequest, raw)
        self._check_banned(req.prompt)
        image = self._blob_or_url(req.image)
        self._check_queue()
        url = self._store(call.base, image)
        task = self._create(
            call,
            action="EDIT",
            kind="edit",
            prompt=req.prompt,
            description=f"/edit {req.prompt}",
            art_text=req.prompt,
            state=req.state,
            notify_hook=req.notify_hook,
            source_url=url,
            na_action="EDITS",
        )
        task.final_prompt = f"{task.final_prompt} --dref {url}"
        return self._accepted(task.id)

    async def _upload(self, call: _Call) -> Response:
        raw = await self._body(call, UploadRequest)
        images = raw.get("base64Array")
        if not isinstance(images, list) or not images:
            self._reject("base64 参数错误")
        req = self._validate(call, UploadRequest, raw)
        blobs = [self._blob(v) for v in req.base64_array]
        urls = [self._store(call.base, b) for b in blobs]
        return self._envelope(CODE_SUCCESS, MSG_OK, urls)

    async def _show(self, call: _Call) -> Response:
        raw = await self._body(call, ShowRequest)
        job = _text(raw, "jobId")
        if not job:
            self._reject("请填写 job id 或 url")
        req = self._validate(call, ShowRequest, raw)
        found = _UUID.search(req.job_id)
        exact = _UUID.fullmatch(req.job_id) is not None
        if found is None or not (exact or re.match(r"^https?://", req.job_id, re.IGNORECASE)):
            self._reject("job id 格式错误")
        job_hash = found.group(0).lower()
        for task in self.tasks.values():
            if task.job_hash == job_hash and self._snapshot(task).status != "FAILURE":
                return self._accepted(task.id)
        self._check_queue()
        task = self._create(
            call,
            action="SHOW",
            kind="grid",
            prompt=f"recalled job {job_hash}",
            description=f"/show {job_hash}",
            art_text=f"job {job_hash}",
            art_key=job_hash,
            state=req.state,
            notify_hook=req.notify_hook,
            job_hash=job_hash,
        )
        return self._accepted(task.id)

    # -- buttons --------------------------------------------------------------------------------

    async def _action(self, call: _Call) -> Response:
        raw = await self._body(call, ActionRequest, keep=("enableRemix",))
        if not _text(raw, "taskId") or not _text(raw, "customId"):
            self._reject(MSG_PARAM)
        req = self._validate(call, ActionRequest, raw)
        parent = self.tasks.get(req.task_id)
        if parent is None:
            self._task_missing()
        if self._snapshot(parent).status != "SUCCESS":
            self._reject(MSG_BAD_STATUS)
        if not any(b["customId"] == req.custom_id for b in _KINDS[parent.kind].buttons(parent)):
            self._reject(MSG_UNKNOWN_ACTION)
        remix = raw.get("enableRemix") is True or self.quirks.remix
        return self._press(call, parent, req.custom_id, state=req.state, notify_hook=req.notify_hook, remix=remix)

    def _press(
        self,
        call: _Call,
        parent: SimTask,
        custom_id: str,
        *,
        state: str | None,
        notify_hook: str | None,
        remix: bool = False,
        action: str | None = None,
    ) -> Response:
        """Run one of the parent's buttons; shared by /action, /change and /simple-change."""
        for rule in _RULES:
            match = rule.pattern.search(custom_id)
            if match is not None:
                break
        else:
            self._reject(MSG_UNKNOWN_ACTION)
        if rule.special == "bookmark":
            return self._envelope(CODE_SUCCESS, MSG_OK, self._result_id(parent.id))
        new_action, kind = rule.action, rule.kind
        if new_action is None or kind is None:
            new_action = _REROLL_AS.get(parent.action, parent.action)
            kind = "grid" if parent.kind == "upscale" else parent.kind
        groups = match.groupdict()
        index = int(groups.get("n") or parent.art_index or 1)
        self._check_queue()
        if rule.special == "all":
            lines = [_numbered_line(parent.result_text or "", n) for n in range(1, 5)]
            ids = [
                self._from_parent(call, parent, "IMAGINE", "grid", rule, 1, custom_id, prompt=line).id
                for line in lines
                if line
            ]
            return self._envelope(CODE_SUCCESS, MSG_OK, ",".join(ids))
        prompt = parent.prompt
        if rule.special == "prompt_line":
            prompt = _numbered_line(parent.result_text or "", index) or parent.prompt
        modal = rule.modal or ("prompt" if remix and rule.remixable else None)
        task = self._from_parent(
            call,
            parent,
            action or new_action,
            kind,
            rule,
            index,
            custom_id,
            prompt=prompt,
            modal=modal,
            state=state,
            notify_hook=notify_hook,
        )
        return self._modal_reply(task) if modal else self._accepted(task.id)

    def _from_parent(
        self,
        call: _Call,
        parent: SimTask,
        action: str,
        kind: Kind,
        rule: _Rule,
        index: int,
        custom_id: str,
        *,
        prompt: str | None,
        modal: ModalNeed | None = None,
        state: str | None = None,
        notify_hook: str | None = None,
    ) -> SimTask:
        # An upscale shows one quadrant of the parent's picture; every other job draws anew.
        same_picture = kind in ("upscale", "video_upscale", "upscale_hd")
        art_index = (index if parent.art_index is None else parent.art_index) if same_picture else None
        extra: dict[str, Any] = {"action_index": index} if action == "UPSCALE" else {}
        task = self._create(
            call,
            action=action,
            kind=kind,
            prompt=prompt,
            description=f"/up {parent.id} {rule.tag.format(n=index)}",
            art_text=(prompt or "") if rule.special else parent.art_text,
            art_key=parent.art_key if same_picture else None,
            queued=modal is None,
            state=state,
            notify_hook=notify_hook,
            parent_id=parent.id,
            custom_id=custom_id,
            na_action=rule.na_action,
            art_index=art_index,
            modal_need=modal,
            extra=extra,
            result_text=parent.result_text if kind == "shorten" else None,
        )
        if same_picture or kind in ("describe", "video"):
            task.size = parent.size
        if kind == parent.kind and kind in ("describe", "edit", "video"):
            task.source_url = parent.source_url
        elif kind == "video":
            # Animate: the first frame is the parent's picture.
            task.source_url = f"{parent.base}/sim/images/{parent.id}.png"
        if kind == "describe":
            task.art_key = f"{parent.art_key}/{task.id}"
            task.result_text = _describe_text(task.art_key, parent.size)
        if parent.mode and not call.mode:
            task.mode = parent.mode
        return task

    async def _modal(self, call: _Call) -> Response:
        raw = await self._body(call, ModalRequest)
        if not _text(raw, "taskId"):
            self._reject(MSG_PARAM)
        req = self._validate(call, ModalRequest, raw)
        task = self.tasks.get(req.task_id)
        if task is None:
            self._task_missing()
        if task.queued_at is not None or task.cancelled_at is not None:
            # Already confirmed: answer as before, change nothing (a retried modal is harmless).
            return self._accepted(task.id)
        prompt = req.prompt or task.prompt or task.final_prompt or ""
        if not prompt:
            self._reject(MSG_PROMPT_EMPTY)
        self._check_banned(prompt)
        if task.modal_need == "zoom":
            zoom = re.search(r"--zoom\s+(\d+(?:\.\d+)?)", prompt)
            if zoom is None or not 1 <= float(zoom.group(1)) <= 2:
                self._reject("--zoom参数错误，取值范围 1~2")
        if task.modal_need == "mask":
            if not req.mask_base64:
                self._reject("maskBase64不能为空")
            mask = req.mask_base64.strip()
            if mask.startswith("data:") and not mask.startswith("data:image/png;base64,"):
                # TA strips only "data:image/png;base64," before decoding the mask.
                self._reject(MSG_BASE64)
            self._blob(mask)
        self._check_queue()
        task.prompt = prompt
        task.art_text = prompt
        task.final_prompt = _normalize_prompt(prompt, task.mode)
        task.family = _model_family(prompt)
        task.fails = bool(self.quirks.failing_marker) and self.quirks.failing_marker in prompt
        self._enqueue(task)
        return self._accepted(task.id)

    async def _change(self, call: _Call) -> Response:
        raw = await self._body(call, ChangeRequest)
        if not _text(raw, "taskId"):
            self._reject("taskId不能为空")
        action = raw.get("action")
        # NZ binds `action` to its TaskAction enum: a known action that is not U/V/R is a code 4,
        # a word outside the enum a binding error (400, from the model's Literal).
        if action is None or (action in _NZ_ACTIONS and action not in get_args(ChangeAction)):
            self._reject("action参数错误")
        # The model refuses U/V without an index, as a client should; NZ itself only fails later.
        no_index = action in ("UPSCALE", "VARIATION") and raw.get("index") is None
        req = self._validate(call, ChangeRequest, {**raw, "index": 1} if no_index else raw)
        tag = "R" if req.action == "REROLL" else f"{req.action[0]}{'' if no_index else req.index}"
        return self._change_parent(call, req.task_id, tag, state=req.state, notify_hook=req.notify_hook)

    async def _simple_change(self, call: _Call) -> Response:
        raw = await self._body(call, SimpleChangeRequest)
        content = _text(raw, "content")
        match = _SIMPLE_CHANGE.match(content)
        if match is None:
            self._reject("content参数错误")
        req = self._validate(call, SimpleChangeRequest, raw)
        task_id, letter, digit, reroll = match.groups()
        tag = "R" if reroll else f"{letter.upper()}{digit}"
        return self._change_parent(call, task_id, tag, state=req.state, notify_hook=req.notify_hook)

    def _change_parent(
        self, call: _Call, task_id: str, tag: str, *, state: str | None, notify_hook: str | None
    ) -> Response:
        """NZ's U/V/R on a grid: `tag` is `U1`..`U4`, `V1`..`V4` or `R`."""
        parent = self.tasks.get(task_id)
        if parent is None:
            self._task_missing()
        if self._snapshot(parent).status != "SUCCESS":
            self._reject(MSG_BAD_STATUS)
        if parent.action not in _CHANGEABLE:
            self._reject("关联任务不允许执行变化")
        if tag in ("U", "V"):
            # NZ unboxes the null index into an int: a NullPointerException, Spring's 500.
            raise _Answer(self._spring_error(500, call.path))
        h = parent.job_hash
        if tag == "R":
            return self._press(
                call,
                parent,
                f"MJ::JOB::reroll::0::{h}::SOLO",
                state=state,
                notify_hook=notify_hook,
                action="REROLL",
            )
        verb = "upsample" if tag[0] == "U" else "variation"
        custom_id = f"MJ::JOB::{verb}::{tag[1]}::{h}"
        return self._press(call, parent, custom_id, state=state, notify_hook=notify_hook)

    # -- reads --------------------------------------------------------------------------------

    async def _fetch(self, call: _Call) -> Response:
        task = self.tasks.get(call.params["id"])
        if task is not None:
            return JSONResponse(self._view(task))
        if self.quirks.unknown_fetch == "empty200":
            return Response(b"", 200)
        if self.quirks.unknown_fetch == "400":
            body = {"description": "task_no_found ", "type": "upstream_error", "code": CODE_VALIDATION}
            return JSONResponse(body, status_code=400)
        return Response(status_code=204)

    async def _list_by_condition(self, call: _Call) -> Response:
        raw = await self._body(call, ConditionRequest)
        if not raw.get("ids"):
            return JSONResponse([])
        req = self._validate(call, ConditionRequest, raw, submit=False)
        wanted = dict.fromkeys(i.strip() for i in req.ids)
        return JSONResponse([self._view(self.tasks[i]) for i in wanted if i in self.tasks])

    def _ordered(self) -> list[SimTask]:
        return sorted(self.tasks.values(), key=lambda t: (t.submit_ms, t.seq))

    async def _recent(self, _call: _Call) -> Response:
        return JSONResponse([self._view(t) for t in reversed(self._ordered())][:_MAX_TASKS_LISTED])

    async def _queue(self, _call: _Call) -> Response:
        return JSONResponse([self._view(t) for t in self._ordered() if self._snapshot(t).status in _UNFINISHED])

    async def _query(self, call: _Call) -> Response:
        raw = await self._body(call, QueryRequest, required=False)
        req = self._validate(call, QueryRequest, raw, submit=False)
        rows = [(t, self._full_view(t, self._snapshot(t))) for t in self.tasks.values()]
        rows = [(t, v) for t, v in rows if _query_matches(req, v)]
        sorted_by = req.sort is not None
        if req.sort is not None:
            name, direction = req.sort.split(",")
            rows.sort(key=lambda row: _sort_key(row[1].get(name)), reverse=direction == "desc")
        total = len(rows)
        offset = req.page_number * req.page_size
        content = [self._view(t) for t, _ in rows[offset : offset + req.page_size]]
        pages = math.ceil(total / req.page_size)
        sort = {"empty": not sorted_by, "sorted": sorted_by, "unsorted": not sorted_by}
        page = {
            "content": content,
            "pageable": {
                "sort": sort,
                "offset": offset,
                "pageNumber": req.page_number,
                "pageSize": req.page_size,
                "paged": True,
                "unpaged": False,
            },
            "last": req.page_number >= pages - 1,
            "totalPages": pages,
            "totalElements": total,
            "size": req.page_size,
            "number": req.page_number,
            "sort": sort,
            "first": req.page_number == 0,
            "numberOfElements": len(content),
            "empty": not content,
        }
        return JSONResponse(page)

    async def _image_seed(self, call: _Call) -> Response:
        task = self.tasks.get(call.params["id"])
        if task is None:
            self._task_missing()
        if self._snapshot(task).status != "SUCCESS":
            return self._envelope(CODE_VALIDATION, MSG_BAD_STATUS, status=400)
        seed = int.from_bytes(_digest(task.job_hash)[:4], "big")
        return self._envelope(CODE_SUCCESS, "成功", str(seed))

    async def _cancel(self, call: _Call) -> Response:
        task_id = call.params["id"]
        task = self.tasks.get(task_id)
        cancelled = False
        if task is not None and self._snapshot(task).status in (*_UNFINISHED, "MODAL"):
            task.cancelled_at = self.clock()
            cancelled = True
        if self.quirks.cancel_empty_body:
            return Response(b"", 200)
        if task is None:
            return self._envelope(CODE_NOT_FOUND, MSG_NOT_FOUND)
        if not cancelled:
            return self._envelope(CODE_VALIDATION, MSG_BAD_STATUS)
        return JSONResponse({"code": CODE_SUCCESS, "description": "success", "result": self._result_id(task_id)})

    # -- media --------------------------------------------------------------------------------

    async def _serve_sim(self, path: str) -> Response:
        match = re.fullmatch(r"/sim/images/([^/]+)\.png", path)
        if match:
            return await self._picture(match.group(1), "final")
        match = re.fullmatch(r"/sim/images/([^/]+)/(preview\.webp|[1-4]\.png)", path)
        if match:
            return await self._picture(match.group(1), match.group(2).split(".")[0])
        match = re.fullmatch(r"/sim/uploads/([^/]+)", path)
        if match and match.group(1) in self._uploads:
            blob = self._uploads[match.group(1)]
            return Response(blob.data, 200, media_type=blob.mime)
        match = re.fullmatch(r"/sim/videos/([^/]+)/[0-3]\.mp4", path)
        if match and match.group(1) in self.tasks and _KINDS[self.tasks[match.group(1)].kind].video:
            return Response(_MP4_PLACEHOLDER, 200, media_type="video/mp4")
        return Response(status_code=404)

    async def _picture(self, task_id: str, variant: str) -> Response:
        task = self.tasks.get(task_id)
        if task is None or not _KINDS[task.kind].picture:
            return Response(status_code=404)
        key = (task_id, variant)
        cached = self._images.get(key)
        if cached is None:
            # Drawing takes tens of milliseconds; on the event loop it would hold back every
            # reply and callback meanwhile, which real upstreams do not do.
            cached = await anyio.to_thread.run_sync(
                _draw_variant, task.art_key, task.art_text, task.art_index, task.size, variant
            )
            self._images[key] = cached
            while len(self._images) > _IMAGE_CACHE_SIZE:
                self._images.popitem(last=False)
        self._images.move_to_end(key)
        return Response(cached[0], 200, media_type=cached[1])

    async def _serve_na_image(self, task_id: str) -> Response:
        """new-api's `/mj/image/{id}`: whatever the task's imageUrl is at the moment."""
        task = self.tasks.get(task_id)
        snap = None
        if task is not None:
            snap = self._na_copy(task) if self._new_api else self._snapshot(task)
        path = self._picture_path(task, snap) if task is not None and snap is not None else None
        if path is None:
            return Response(status_code=404)
        if not path.startswith("/"):
            return RedirectResponse(path, status_code=302)
        return await self._serve_sim(path)

    # -- callbacks ----------------------------------------------------------------------------

    def due_callbacks(self) -> list[tuple[str, bytes]]:
        """(notifyHook, Task JSON body) for each task whose status or progress moved since its last one.

        As the real upstreams do: one callback per change, none while NOT_START or MODAL, and
        the body is the task as `fetch` shows it.
        """
        due: list[tuple[str, bytes]] = []
        for task in self.tasks.values():
            if not task.notify_hook:
                continue
            snap = self._snapshot(task)
            if snap.status in ("NOT_START", "MODAL"):
                continue
            key = f"{snap.status}:{snap.progress}"
            if key == task.notified:
                continue
            task.notified = key
            # Sent by the upstream itself, not through a gateway in front: its own Task JSON.
            body = self._full_view(task, snap)
            due.append((task.notify_hook, json.dumps(body, ensure_ascii=False).encode()))
        return due

    async def send_callbacks(self, post: Callable[[str, bytes], Awaitable[object]]) -> int:
        """Send every due callback with `post(url, body)`; a failed one is dropped (no retries upstream either)."""
        sent = 0
        for url, body in self.due_callbacks():
            try:
                await post(url, body)
            except Exception as exc:  # the receiver's problem; real upstreams only log it
                _logger.info("Callback to %s failed: %s", url.split("/mj-callback/")[0], type(exc).__name__)
                continue
            sent += 1
        return sent

    def standalone_app(self) -> StandaloneApp:
        """`app`, plus sending callbacks in the background while an HTTP server runs it."""
        return StandaloneApp(self)

    async def run_callbacks(self, *, tick: float = CALLBACK_TICK) -> None:
        """POST due callbacks every `tick` seconds, over HTTP, until cancelled (the standalone simulator)."""
        async with httpx2.AsyncClient(timeout=10.0) as client:

            async def post(url: str, body: bytes) -> object:
                return await client.post(url, content=body, headers={"Content-Type": "application/json"})

            # A test's fake clock moves time as the sender sleeps; otherwise real time.
            sleep = self.clock.sleep if isinstance(self.clock, _SleepingClock) else anyio.sleep
            while True:
                await self.send_callbacks(post)
                await sleep(tick)


class StandaloneApp:
    """The simulator's ASGI app for an HTTP server: its lifespan runs the callback sender."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.simulator.app(scope, receive, send)
            return
        async with anyio.create_task_group() as tg:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    tg.start_soon(self.simulator.run_callbacks)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    tg.cancel_scope.cancel()
                    return


# ---------------------------------------------------------------------------------------------
# Small helpers of the simulator


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _same(presented: str, key: str) -> bool:
    return bool(presented) and secrets.compare_digest(presented.encode(), key.encode())


def _strip_bearer(value: str) -> str:
    """new-api strips exactly "Bearer " or "bearer " (then spaces), nothing else."""
    return value[7:].strip() if value.startswith(("Bearer ", "bearer ")) else value


def _path_pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path).replace(re.escape("{id}"), r"(?P<id>[^/]+)"))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def _query_matches(req: QueryRequest, view: Mapping[str, Any]) -> bool:
    """The PLUS paged-query filters: exact for ids/enums/state/instance, substring for texts."""
    checks: list[bool] = [
        req.id is None or view["id"] == req.id,
        req.ids is None or view["id"] in req.ids,
        req.action is None or view["action"] == req.action,
        req.status is None or view["status"] == req.status,
        req.status_set is None or view["status"] in req.status_set,
        req.state is None or view["state"] == req.state,
        req.instance_id is None or view["properties"].get("discordInstanceId") == req.instance_id,
    ]
    for wanted, name in (
        (req.prompt, "prompt"),
        (req.prompt_en, "promptEn"),
        (req.description, "description"),
        (req.fail_reason, "failReason"),
    ):
        checks.append(wanted is None or wanted in (view[name] or ""))
    return all(checks)


def run_simulator(host: str = "127.0.0.1", port: int = 8080, **sim_options: Unpack[SimulatorOptions]) -> None:
    """Serve a new Simulator over HTTP with uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(Simulator(**sim_options).standalone_app(), host=host, port=port, log_level="info")
