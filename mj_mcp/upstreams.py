"""Upstream profiles: what differs between the four upstream programs, as data.

`MJ_UPSTREAM` names the software that answers at `MJ_BASE_URL`: midjourney-proxy-plus (`plus`,
what openai-hk and the seeds document), a new-api gateway in front of a proxy (`new-api`), a
self-hosted trueai-org midjourney-proxy (`trueai`) or the original novicezk one (`novicezk`).
Each is one frozen `Profile`; code asks it (`profile.offers(endpoint)`, `profile.mode_prefix`,
`profile.account_filter`, ...) and never compares profile names. The facts come from reading
each program's source (docs/upstream-api.md §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

from pydantic import Field

from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.models import (
    ActionRequest,
    AuthHeader,
    ChangeRequest,
    DescribeRequest,
    InstanceId,
    ModePrefix,
    Modes,
    Remix,
    SimpleChangeRequest,
    VideoRequest,
    WireModel,
)

__all__ = [
    "DEFAULT_UPSTREAM",
    "EXTRA_FIELDS",
    "PROFILES",
    "UPSTREAM_NAMES",
    "AccountSelection",
    "AccountShape",
    "Code21",
    "Profile",
    "Upstream",
    "as_change",
    "change_button",
    "recognise",
]

Upstream = Literal["plus", "new-api", "trueai", "novicezk"]
UPSTREAM_NAMES: Final[tuple[str, ...]] = get_args(Upstream)
DEFAULT_UPSTREAM: Final[Upstream] = "plus"

AccountShape = Literal["top_level", "nested", "none"]
"""Where account selection (instanceId, modes, remix, ...) goes in a job's body: at the top level
(PLUS; new-api forwards it), inside `accountFilter` (trueai reads it only there), or nowhere
(novicezk has none)."""

Code21 = Literal["modal", "task_exists"]
"""What a submit's code 21 means: the new task waits in MODAL for a `modal` call (trueai), or a
task like it already exists (the others' docs), unless the reply itself shows a MODAL wait."""

MB: Final = 1_000_000


class AccountSelection(WireModel):
    """Which upstream account runs a job (MJ_ACCOUNT_FILTER): PLUS reads these at the top level of
    a job's body, trueai inside `accountFilter` (where it also reads the last three)."""

    instance_id: InstanceId = None
    modes: Modes = None
    remix: Remix = None
    niji_remix: bool | None = Field(default=None, description="trueai: niji remix filter.")
    remix_auto_considered: bool | None = Field(default=None, description="trueai: remix auto-considered filter.")
    remark: str | None = Field(default=None, max_length=255, description="trueai: the account's remark.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One upstream program, as far as this server must know it."""

    name: Upstream
    title: str
    """How a person names it ("a new-api gateway")."""
    auth_header: AuthHeader
    """The MJ_AUTH_HEADER default: the one header form it reads."""
    mode_prefix: ModePrefix
    """The MJ_MODE_PREFIX default: how a speed mode reaches it."""
    account_filter: AccountShape
    lacks: frozenset[str] = frozenset()
    """Endpoint names it has no route for."""
    done_as: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Endpoints it lacks (or cannot relay) that the server does through another endpoint instead."""
    code_21: Code21 = "task_exists"
    unrelayed_buttons: tuple[str, ...] = ()
    """customId beginnings of buttons it refuses to press (new-api's CoverPlusActionToNormalAction)."""
    reroll_index: bool = False
    """`change` REROLL must carry an index (new-api refuses index 0 for every change)."""
    max_body_bytes: int | None = None
    """The largest request body it accepts (None: no known limit); a bigger job is refused before sending."""
    describe_link: bool = False
    """Describe takes an image URL in `link`: sent there, it needs no upload (which may be switched off)."""
    fingerprint: str
    """How to tell that a reply comes from this program."""
    reads: Mapping[type[WireModel], frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    """The `EXTRA_FIELDS` (wire names, by request model) it reads; the others are neither listed nor sent."""

    def offers(self, endpoint: Endpoint | str) -> bool:
        """Whether the endpoint works here, directly or done another way (`alternative_for`)."""
        name = endpoint if isinstance(endpoint, str) else endpoint.name
        return name not in self.lacks or name in self.done_as

    def routes(self, endpoint: Endpoint | str) -> bool:
        """Whether the upstream itself serves the endpoint's route, as the server would send it."""
        name = endpoint if isinstance(endpoint, str) else endpoint.name
        return name not in self.lacks and name not in self.done_as

    def alternative_for(self, endpoint: Endpoint | str) -> Endpoint | None:
        """The endpoint the server sends instead of this one here, or None when it is sent as it is."""
        name = endpoint if isinstance(endpoint, str) else endpoint.name
        other = self.done_as.get(name)
        return ENDPOINTS[other] if other is not None else None

    def unread(self, request: type[WireModel]) -> frozenset[str]:
        """The wire names of `request`'s `EXTRA_FIELDS` this program does not read."""
        return EXTRA_FIELDS.get(request, frozenset()) - self.reads.get(request, frozenset())

    def presses(self, custom_id: str) -> bool:
        """Whether a button with this customId can be pressed here (so a hint may suggest it)."""
        return not custom_id.startswith(self.unrelayed_buttons)

    @property
    def setting(self) -> str:
        """The setting that selects this profile."""
        return f"MJ_UPSTREAM={self.name}"


EXTRA_FIELDS: Final[Mapping[type[WireModel], frozenset[str]]] = MappingProxyType(
    {
        VideoRequest: frozenset({"endImage", "loop", "videoType", "batchSize"}),
        ActionRequest: frozenset({"enableRemix"}),
        DescribeRequest: frozenset({"language"}),
    }
)
"""DTO fields only some upstreams read (trueai's SubmitVideoDTO, SubmitActionDTO, SubmitDescribeDTO;
its action DTO also declares `strong`, which nothing there reads, so it is not offered):
a profile names those it reads in `Profile.reads`. The others ignore them at best, so they cost the
default surface nothing: neither listed nor sent there."""


def _names(*names: str) -> frozenset[str]:
    unknown = set(names) - ENDPOINTS.keys()
    assert not unknown, unknown  # a typo here would silently list a missing tool
    return frozenset(names)


def _done_as(**pairs: str) -> Mapping[str, str]:
    assert pairs.keys() <= ENDPOINTS.keys(), pairs
    assert set(pairs.values()) <= ENDPOINTS.keys(), pairs
    return MappingProxyType(pairs)


PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {
        p.name: p
        for p in (
            Profile(
                name="plus",
                title="midjourney-proxy-plus (as openai-hk documents it)",
                auth_header="bearer",
                mode_prefix="/{mode}",
                account_filter="top_level",
                lacks=_names("retexture"),  # trueai's own route
                code_21="task_exists",
                fingerprint="the midjourney-proxy envelope {code, description, result, properties} on every route",
            ),
            Profile(
                name="new-api",
                title="a new-api gateway",
                auth_header="bearer",
                # `/fast/mj/...` is forwarded as it came (a trueai channel answers 404) and
                # `/mj-fast/mj/...` loses its prefix: only the prompt keyword reaches Midjourney.
                mode_prefix="prompt",
                account_filter="top_level",
                lacks=_names(
                    "show", "recent_tasks", "task_queue", "cancel_task", "query_tasks", "simple_change", "retexture"
                ),
                # Its simple-change route derives the model "mj_" and always fails (503/403).
                done_as=_done_as(simple_change="change"),
                code_21="task_exists",
                unrelayed_buttons=(
                    "MJ::Job::PicReader",  # describe's 1️⃣-4️⃣
                    "MJ::Job::PromptAnalyzer",  # shorten's 1️⃣-5️⃣
                    "MJ::JOB::animate",
                    "MJ::JOB::video_virtual_upscale",
                    "MJ::Picread::Retry",
                    "MJ::BOOKMARK",
                ),
                reroll_index=True,
                max_body_bytes=32 * MB,  # MAX_REQUEST_BODY_MB, default 32 (MiB: the smaller reading, MB, is kept)
                fingerprint='its own error JSON {"error":{"message":…,"type":…}} (of its own type), and its '
                "dashboard HTML at HTTP 200 on the /mj routes it does not relay",
            ),
            Profile(
                name="trueai",
                title="a trueai-org midjourney-proxy",
                auth_header="mj-api-secret",
                mode_prefix="/mj-{mode}",
                account_filter="nested",
                lacks=_names("change", "simple_change", "show", "query_tasks", "task_queue"),
                # No change routes since v10: the grid's buttons do the same.
                done_as=_done_as(change="action", simple_change="action"),
                code_21="modal",
                max_body_bytes=30 * MB,  # Kestrel's default body limit (Program.cs)
                describe_link=True,
                fingerprint='{"success":false,"code":-1,"message":…} at HTTP 200 for refusals and bad requests',
                reads=EXTRA_FIELDS,
            ),
            Profile(
                name="novicezk",
                title="the original novicezk midjourney-proxy",
                auth_header="mj-api-secret",
                mode_prefix="prompt",
                account_filter="none",
                lacks=_names(
                    "action",
                    "modal",
                    "shorten",
                    "video",
                    "edit",
                    "swap_face",
                    "upload_images",
                    "show",
                    "image_seed",
                    "cancel_task",
                    "query_tasks",
                    "retexture",
                ),
                code_21="task_exists",
                reroll_index=True,  # ignored for REROLL there, so sending one is harmless
                fingerprint='Spring Boot\'s {"timestamp","status":404,"error":"Not Found","path"} for a missing route',
            ),
        )
    }
)
"""Every profile by its MJ_UPSTREAM name."""


_BUTTON_OF_CHANGE: Final[dict[str, str]] = {"UPSCALE": "U{index}", "VARIATION": "V{index}", "REROLL": "🔄"}
_CHANGE_OF_LETTER: Final[dict[str, Literal["UPSCALE", "VARIATION", "REROLL"]]] = {
    "U": "UPSCALE",
    "V": "VARIATION",
    "R": "REROLL",
}


def as_change(request: SimpleChangeRequest) -> ChangeRequest:
    """The `change` request that does what a simple-change `content` ("<taskId> U2") says.

    ValueError when `content` is not of that form (the upstreams answer it with "content参数错误").
    """
    parts = request.content.split()
    letter, index = (parts[1][:1].upper(), parts[1][1:]) if len(parts) == 2 else ("", "")
    action = _CHANGE_OF_LETTER.get(letter)
    if action is None or (action == "REROLL") != (index == "") or (index and index not in ("1", "2", "3", "4")):
        raise ValueError("content must look like '<taskId> U1..U4|V1..V4|R', e.g. '1320098173412546 U2'")
    return ChangeRequest(
        task_id=parts[0],
        action=action,
        index=int(index) if index else None,
        notify_hook=request.notify_hook,
        state=request.state,
    )


def change_button(request: ChangeRequest) -> str:
    """The label of the grid button that does what `request` asks (U2, V1, 🔄), for `action`."""
    return _BUTTON_OF_CHANGE[request.action].format(index=request.index or 1)


def recognise(status: int, data: Any, *, web_page: bool) -> Upstream | None:
    """Which program sent a reply with this status and parsed JSON `data` (`web_page`: HTML where
    JSON belongs, at a success status), when it bears one's signature (`Profile.fingerprint`)."""
    if web_page:
        return "new-api"  # its dashboard answers the /mj routes it does not relay
    if not isinstance(data, dict):
        return None
    body = cast(dict[str, Any], data)
    error = body.get("error")
    if isinstance(error, dict) and cast(dict[str, Any], error).get("type") == "new_api_error":
        return "new-api"
    if body.get("success") is False and body.get("code") == -1:
        return "trueai"
    if status == 404 and body.get("status") == 404 and {"timestamp", "error", "path"} <= body.keys():
        return "novicezk"
    return None
