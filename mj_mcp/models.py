"""Wire models of the midjourney-proxy API: one request model per endpoint, and the replies.

These models are the single source of truth for an endpoint: the client serialises them as
the request body, the simulator parses them, and the MCP server derives each tool's input
schema from them. Field names are snake_case in Python and camelCase (the wire names) in JSON.

Reply models are lenient on purpose: real upstreams disagree about nulls, empty strings, number
vs string ids and extra fields (see docs/upstream-api.md §7), so unknown fields are kept, enum
fields accept any string, and ids are normalised to strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, Self, TypeVar, cast

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from mj_mcp.glossary import english_or_none

# ---------------------------------------------------------------------------------------------
# Enumerations (as documented; replies accept other strings too)


class Status(StrEnum):
    """A task's status as the upstreams spell it (replies may carry others; compare with these)."""

    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    MODAL = "MODAL"
    IN_PROGRESS = "IN_PROGRESS"
    FAILURE = "FAILURE"
    SUCCESS = "SUCCESS"
    CANCEL = "CANCEL"


FINISHED_STATUSES: Final = frozenset({Status.SUCCESS, Status.FAILURE, Status.CANCEL})

Mode = Literal["fast", "relax", "turbo"]
AuthHeader = Literal["bearer", "mj-api-secret", "authorization"]
"""How the key is sent: `Authorization: Bearer <key>`, `mj-api-secret: <key>`, or `Authorization: <key>`."""
ModePrefix = Literal["/{mode}", "/mj-{mode}", "prompt"]
"""How the speed mode reaches the upstream: in a job's path (`/fast/mj/...` or `/mj-fast/mj/...`),
or as `--fast`/`--relax`/`--turbo` at the end of the job's prompt (which Midjourney itself honours)."""
BotType = Literal["MID_JOURNEY", "NIJI_JOURNEY"]
AccountMode = Literal["RELAX", "FAST", "TURBO"]
Dimensions = Literal["PORTRAIT", "SQUARE", "LANDSCAPE"]
Motion = Literal["low", "high"]
VideoType = Literal["vid_1.1_i2v_480", "vid_1.1_i2v_720"]
ChangeAction = Literal["UPSCALE", "VARIATION", "REROLL"]
# Return codes (identical in NZ, PLUS and TA)
CODE_SUCCESS: Final = 1
CODE_NOT_FOUND: Final = 3
CODE_VALIDATION: Final = 4
CODE_FAILURE: Final = 9
CODE_EXISTED_MODAL: Final = 21
CODE_IN_QUEUE: Final = 22
CODE_QUEUE_REJECTED: Final = 23
CODE_BANNED_PROMPT: Final = 24


class _CamelModel(BaseModel):
    """camelCase on the wire, snake_case in Python, either accepted when parsing."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
    _wire_omits: ClassVar[Literal["none", "unset"]]
    """Which fields `to_wire` leaves out: those that are None, or those never set."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON for the wire, under the wire names, without the fields `_wire_omits` names."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=self._wire_omits == "none",
            exclude_unset=self._wire_omits == "unset",
        )


class WireModel(_CamelModel):
    """Base of the request models. `to_wire` is the JSON body for the upstream, without None fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    _wire_omits = "none"


# ---------------------------------------------------------------------------------------------
# Field types shared by several requests

NotifyHook = Annotated[
    str | None,
    Field(
        max_length=2000,
        description="Callback URL.",
    ),
]
State = Annotated[
    str | None,
    Field(max_length=255, description="Echoed in the task."),
]
InstanceId = Annotated[str | None, Field(description="Account instance.")]
Modes = Annotated[
    list[AccountMode] | None,
    Field(description="Allowed account modes."),
]
Remix = Annotated[bool | None, Field(description="Account remix filter.")]
TaskId = Annotated[str, Field(min_length=1, max_length=64, description="Task id.")]
ImageInput = Annotated[str, Field(min_length=1)]
"""An image: data URI, raw base64, an http(s) URL, or a local file path (field descriptions say so)."""


class _AccountSelection(WireModel):
    """Fields shared by the PLUS-style submits that pick an upstream account."""

    bot_type: BotType | None = Field(default=None, description="NIJI: anime.")
    instance_id: InstanceId = None
    modes: Modes = None
    remix: Remix = None
    notify_hook: NotifyHook = None
    state: State = None


class ImagineRequest(_AccountSelection):
    """imagineDTO: `POST /mj/submit/imagine`."""

    prompt: str = Field(
        min_length=1,
        max_length=8192,
        description="Subject, style, then parameters: --ar 16:9, --niji 6, --no text.",
    )
    base64_array: list[ImageInput] | None = Field(
        default=None,
        max_length=5,
        description="Image prompts.",
    )


class BlendRequest(_AccountSelection):
    """blendDTO: `POST /mj/submit/blend`."""

    base64_array: list[ImageInput] = Field(
        min_length=2,
        max_length=5,
        description="The images.",
    )
    dimensions: Dimensions | None = Field(default=None, description="2:3, 1:1 (default) or 3:2.")


class DescribeRequest(_AccountSelection):
    """describeDTO: `POST /mj/submit/describe`."""

    base64: ImageInput = Field(description="The image.")
    link: SkipJsonSchema[str | None] = None  # trueai: an image URL sent as is (the server fills it in)
    language: str | None = Field(default=None, max_length=16, description="Prompts translated to: zh.")


class ShortenRequest(_AccountSelection):
    """shortenDTO: `POST /mj/submit/shorten`."""

    prompt: str = Field(min_length=1, max_length=8192, description="The prompt.")


class ActionRequest(WireModel):
    """actionDTO: `POST /mj/submit/action` (press a button of a finished task)."""

    task_id: TaskId = Field(description="The task whose button to press.")
    custom_id: str = Field(
        min_length=1,
        max_length=512,
        description="Label as shown (U2, 🔄, Vary (Strong), pan left) or customId.",
    )
    enable_remix: bool | None = Field(default=None, description="Remix: MODAL for a new prompt.")
    notify_hook: NotifyHook = None
    state: State = None


class ModalRequest(WireModel):
    """modalDTO: `POST /mj/submit/modal` (confirm a task waiting in MODAL status)."""

    task_id: TaskId = Field(description="The MODAL task.")
    prompt: str | None = Field(default=None, max_length=8192, description="Custom Zoom: with --zoom 1-2.")
    mask_base64: str | None = Field(default=None, description="Vary (Region): white = repaint, image's size.")


class AccountFilter(WireModel):
    """Filter: which upstream account runs the job."""

    instance_id: InstanceId = None


class SwapFaceRequest(WireModel):
    """swapFaceDTO: `POST /mj/insight-face/swap`."""

    source_base64: ImageInput = Field(description="The face.")
    target_base64: ImageInput = Field(description="The picture whose face is replaced.")
    account_filter: AccountFilter | None = Field(default=None, description="Pick the upstream account.")
    notify_hook: NotifyHook = None
    state: State = None


class VideoRequest(WireModel):
    """video: `POST /mj/submit/video` (animate an image)."""

    prompt: str = Field(min_length=1, max_length=8192, description="What happens.")
    image: str | None = Field(default=None, description="First frame.")
    motion: Motion | None = Field(default=None, description="low (default) or high.")
    end_image: str | None = Field(default=None, description="Last frame.")
    loop: bool | None = Field(default=None, description="Ends where it starts.")
    video_type: VideoType | None = Field(default=None, description="720 = HD.")
    batch_size: Literal[1, 2, 4] | None = Field(default=None, description="Videos (default 4).")
    notify_hook: NotifyHook = None
    state: State = None


class RetextureRequest(WireModel):
    """retexture (trueai): `POST /mj/submit/retexture` (new surfaces, same shapes)."""

    prompt: str = Field(min_length=1, max_length=8192, description="The new look, e.g. 'made of glass'.")
    image: ImageInput = Field(description="The image.")
    notify_hook: NotifyHook = None
    state: State = None


class EditsRequest(WireModel):
    """edits: `POST /mj/submit/edits` (edit an image by instruction)."""

    prompt: str = Field(min_length=1, max_length=8192, description="The edit, e.g. 'white background'.")
    image: ImageInput = Field(description="The image.")
    notify_hook: NotifyHook = None
    state: State = None


class UploadRequest(WireModel):
    """upload: `POST /mj/submit/upload-discord-images` (host images, get URLs back)."""

    base64_array: list[ImageInput] = Field(min_length=1, max_length=10, description="The images.")


class ShowRequest(WireModel):
    """show: `POST /mj/submit/show` (bring back a Midjourney job by its job id)."""

    job_id: str = Field(
        min_length=1,
        max_length=2048,
        description="Job id (UUID) or an image URL with it.",
    )
    notify_hook: NotifyHook = None
    state: State = None


class ChangeRequest(WireModel):
    """changeDTO: `POST /mj/submit/change` (U/V/reroll by index, the older API)."""

    task_id: TaskId = Field(description="The grid task.")
    action: ChangeAction = Field(description="What to do.")
    index: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Grid image (UPSCALE, VARIATION).",
    )
    notify_hook: NotifyHook = None
    state: State = None

    @model_validator(mode="after")
    def _index_for_one_image(self) -> Self:
        # The original proxy answers a missing index with HTTP 500, which would leave the job's
        # fate unknown; say so before anything is sent.
        if self.action in ("UPSCALE", "VARIATION") and self.index is None:
            raise ValueError(f"{self.action} needs index: which image of the grid, 1-4")
        return self


class SimpleChangeRequest(WireModel):
    """simple-change: `POST /mj/submit/simple-change`."""

    content: str = Field(
        min_length=1,
        max_length=128,
        description="'<taskId> U2': U1-U4, V1-V4 or R.",
    )
    notify_hook: NotifyHook = None
    state: State = None


class FetchRequest(WireModel):
    """show (task): `GET /mj/task/{id}/fetch`."""

    task_id: TaskId


class ConditionRequest(WireModel):
    """conditionDTO: `POST /mj/task/list-by-condition`."""

    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=500, description="Task ids."
    )


class TaskIdRequest(WireModel):
    """Path-only requests: image-seed, cancel."""

    task_id: TaskId


class EmptyRequest(WireModel):
    """Endpoints without a body: list, queue."""


# ---------------------------------------------------------------------------------------------
# Replies


def _none_as(default: Callable[[], Any]) -> BeforeValidator:
    """Read a null as `default()`: upstreams send null for an empty text, list or object."""
    return BeforeValidator(lambda value: default() if value is None else value)


_T = TypeVar("_T")
Text = Annotated[str, _none_as(str)]
"""Text that may come as null (read as "")."""
Properties = Annotated[dict[str, Any], _none_as(dict)]
"""An object that may come as null (read as {})."""
ListOrNull = Annotated[list[_T], _none_as(list)]
"""A list that may come as null (read as [])."""
ButtonCode = Annotated[int, _none_as(lambda: 2)]
"""A Discord button's style or type; null reads as 2 (secondary style, a button)."""


def _id_to_str(value: Any) -> Any:
    # Ids are numeric strings; some docs print them as JSON numbers. Never do arithmetic on them.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


CALLBACK_KEYS: Final = frozenset({"notifyHook", "notify_hook"})
"""The callback URL that NZ and TA give back in a task (`properties.notifyHook`): its path is the
callback receiver's only credential, so no reply model keeps it, and no model reads it."""


def _without_callback(value: Any) -> Any:
    """A reply object without the callback URL, at the top and in its `properties`."""
    if isinstance(value, dict):
        value = {k: v for k, v in cast(dict[str, Any], value).items() if k not in CALLBACK_KEYS}
        if isinstance(properties := value.get("properties"), dict):
            value["properties"] = {k: v for k, v in cast(dict[str, Any], properties).items() if k not in CALLBACK_KEYS}
    return value  # pyright: ignore[reportUnknownVariableType]


class ReplyModel(_CamelModel):
    """Base of reply models: unknown fields kept. `to_wire` gives the fields the upstream sent
    (and defaults we filled in)."""

    model_config = ConfigDict(
        extra="allow",
        # Replies are first parsed after start-up; building their validators then keeps the
        # time to the first tools/list down.
        defer_build=True,
    )
    _wire_omits = "unset"


class SubmitResult(ReplyModel):
    """SubmitResultVO: `{code, description, result, properties}`."""

    code: int
    description: Text = ""
    result: Annotated[str | list[str] | None, BeforeValidator(_id_to_str)] = None
    properties: Properties = Field(default_factory=dict)

    @field_validator("result", mode="before")
    @classmethod
    def _result_items(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_id_to_str(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
        return value

    _no_callback = model_validator(mode="before")(_without_callback)

    @property
    def task_id(self) -> str | None:
        """The new task's id (the first one when the upstream returns several)."""
        if isinstance(self.result, list):
            return self.result[0] if self.result else None
        if self.result is None:
            return None
        return self.result.split(",")[0].strip() or None

    @property
    def task_ids(self) -> list[str]:
        """Every id in `result` (PicReader::all returns a comma-joined list)."""
        if isinstance(self.result, list):
            return list(self.result)
        if not self.result:
            return []
        return [part.strip() for part in self.result.split(",") if part.strip()]

    @property
    def queue_position(self) -> int | None:
        """Jobs ahead in the queue, when the upstream said (code 22)."""
        value = self.properties.get("numberOfQueues")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class Button(ReplyModel):
    """A button on a finished task; press it with `action`."""

    custom_id: Text = ""
    emoji: Text = ""
    label: Text = ""
    style: ButtonCode = 2
    type: ButtonCode = 2

    @property
    def display(self) -> str:
        """How the button is named to a model: its label, else its emoji, else its customId."""
        return self.label or self.emoji or self.custom_id


class MediaUrl(ReplyModel):
    """One entry of `imageUrls` / `videoUrls`."""

    url: str = ""
    thumbnail: str | None = None


_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%\s*$")


class Task(ReplyModel):
    """The upstream Task. Every documented field is typed; any other field is kept as sent."""

    id: Annotated[str, BeforeValidator(_id_to_str)] = Field(validation_alias=AliasChoices("id", "taskId"))
    action: str | None = None
    status: str | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    description: Annotated[str | None, AfterValidator(english_or_none)] = None  # TA's 提交成功 and the like
    state: str | None = None
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    image_url: str | None = None
    progress: str | None = None
    fail_reason: Annotated[str | None, AfterValidator(english_or_none)] = None  # 取消任务 and the like, in English
    properties: Properties = Field(default_factory=dict)
    buttons: ListOrNull[Button] = Field(default_factory=lambda: list[Button]())
    image_urls: list[MediaUrl] | None = None
    video_url: str | None = None
    video_urls: list[MediaUrl] | None = None
    image_width: int | None = None
    image_height: int | None = None
    bot_type: str | None = None
    custom_id: str | None = None
    parent_id: Annotated[str | None, BeforeValidator(_id_to_str)] = None

    _no_callback = model_validator(mode="before")(_without_callback)

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value:g}%"
        return value

    @field_validator("submit_time", "start_time", "finish_time", "image_width", "image_height", mode="before")
    @classmethod
    def _int_or_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return int(value) if value.strip().isdigit() else None
        if isinstance(value, float) and math.isfinite(value):
            return int(value)
        return value

    @property
    def percent(self) -> int:
        """Progress as a whole number 0..100 (SUCCESS is 100; unparsable text is 0)."""
        if self.status == "SUCCESS":
            return 100
        match = _PERCENT.match(self.progress or "")
        if not match:
            return 0
        return max(0, min(100, int(float(match.group(1)))))

    @property
    def finished(self) -> bool:
        """SUCCESS, FAILURE or CANCEL: nothing will change any more."""
        return (self.status or "") in FINISHED_STATUSES

    @property
    def final_prompt(self) -> str | None:
        value = self.properties.get("finalPrompt")
        return value if isinstance(value, str) and value else None

    def button(self, wanted: str) -> Button | None:
        """The button whose customId, label or emoji is `wanted` (labels compare case-insensitively)."""
        wanted_clean = wanted.strip()
        for b in self.buttons:
            if b.custom_id == wanted_clean:
                return b
        folded = _fold(wanted_clean)
        for b in self.buttons:
            if folded and folded in {_fold(b.label), _fold(b.emoji), _fold(f"{b.emoji} {b.label}")}:
                return b
        return None


def _fold(text: str) -> str:
    # Emoji arrive with and without the variation selector (U+FE0F); labels vary in case and spaces.
    return " ".join(text.replace("\ufe0f", "").split()).casefold()


class Page(ReplyModel):
    """Spring Data page returned by `/mj/task/query`."""

    content: ListOrNull[Task] = Field(default_factory=lambda: list[Task]())
    total_elements: int = 0
    total_pages: int = 0
    number: int = 0
    size: int = 0
    number_of_elements: int = 0
    first: bool = True
    last: bool = True
    empty: bool = True


STATUS_ORDER: Final[dict[str, int]] = {
    "": 0,
    Status.MODAL: 0,
    Status.NOT_START: 0,
    Status.SUBMITTED: 1,
    Status.IN_PROGRESS: 3,
    Status.FAILURE: 4,
    Status.CANCEL: 4,
    Status.SUCCESS: 5,
}
"""Each status's rank in a task's lifecycle. Rank 2 is left free on purpose: see `task_order`."""
_UNKNOWN_STATUS_RANK: Final = 2
"""A status not listed above (some upstream's own word) ranks between SUBMITTED and IN_PROGRESS: most
likely the job is running, so it may follow a submit, but it never undoes reported progress or an end."""


def task_order(task: Task) -> float:
    """Where a task is in its lifecycle; a newer snapshot never has a lower value."""
    rank = STATUS_ORDER.get(task.status or "", _UNKNOWN_STATUS_RANK)
    return rank + (task.percent / 1000 if task.status == Status.IN_PROGRESS else 0)
