"""The four upstreams the simulator can play, one small table of facts each (`Profile`).

`Simulator(upstream=NAME)` picks one: `plus` (midjourney-proxy-plus as openai-hk and the seeds
document it, and today's permissive default), `trueai` (trueai-org midjourney-proxy), `novicezk`
(the original midjourney-proxy) and `new-api` (a new-api gateway in front of a proxy: its
`channel`, a PLUS one unless `Simulator(channel=...)` names trueai or novicezk).
Every fact comes from the upstream audit of issue 13 (sections A, B, D and E); the layers ask the profile
instead of comparing its name. A profile also presets the `Quirks` of its dialect (auth, unknown
fetch, new-api in front); a test that passes its own `Quirks` keeps them as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

__all__ = [
    "CHANNELS",
    "DEFAULT_CHANNEL",
    "DEFAULT_MODE",
    "NOVICEZK",
    "PLUS",
    "PROFILES",
    "PROFILE_BY_NAME",
    "TRUEAI",
    "ChannelName",
    "Prefix",
    "PrefixStyle",
    "Profile",
    "ProfileName",
    "new_api",
]

ProfileName = Literal["plus", "new-api", "trueai", "novicezk"]
ChannelName = Literal["plus", "trueai", "novicezk"]
"""The proxy software behind new-api (its channel type)."""
PROFILES: Final[tuple[ProfileName, ...]] = ("plus", "new-api", "trueai", "novicezk")
"""The names `Simulator(upstream=...)` and `mj-mcp simulate --upstream` accept."""

DEFAULT_MODE: Final = "FAST"
"""The effective mode of a job that asked for none: a Midjourney account runs in fast mode
until told otherwise (`SimTask.effective_mode`)."""

PrefixStyle = Literal["/{mode}", "/mj-{mode}"]
"""A speed-mode prefix in front of `/mj/...`: `/fast/mj/...` or `/mj-fast/mj/...`."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """The speed-mode prefix a request came with."""

    style: PrefixStyle
    mode: str
    """FAST, RELAX or TURBO."""
    text: str
    """The prefix as sent (`/fast`, `/mj-turbo`), for forwarding it verbatim."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """What one upstream software does, as far as a client can tell (the upstream audit of issue 13 E)."""

    name: ProfileName
    lacks: frozenset[str] = frozenset()
    """Endpoint names (`mj_mcp.endpoints`) this upstream has no route for: they answer 404."""
    aliases: bool = True
    """TA's second paths `/mj/submit/edit` and `/mj/task/list-by-ids` are routed."""
    not_found: Literal["empty", "spring"] = "empty"
    """The body of a 404: empty (TA, PLUS) or Spring Boot's JSON (NZ)."""
    mode_routes: frozenset[PrefixStyle] = frozenset({"/{mode}", "/mj-{mode}"})
    """Which speed-mode prefixes it routes; any other prefix is a 404."""
    nested_selection: bool = False
    """Account selection (instanceId, modes, remix) is read from `accountFilter` only (TA);
    otherwise from the top level of the body (PLUS)."""
    banned_later: bool = False
    """A banned prompt is accepted (code 1) and the job fails later with the banned reason (TA);
    otherwise it is refused at once with code 24."""
    buttons: bool = True
    """Tasks carry buttons and the TA fields (mode, imageUrls, botType ...); NZ's do not."""
    shows_effective_mode: bool = False
    """The Task JSON's `mode` is the mode the job runs in, the account default included (TA);
    otherwise the mode that was asked for, null for none (PLUS)."""
    describe_link: bool = False
    """Describe also takes an image URL in `link` (TA)."""
    ta_options: bool = False
    """Acts on trueai's extra video fields (endImage, loop, batchSize: `mj_mcp.upstreams.EXTRA_FIELDS`)
    and routes `/mj/submit/retexture` (TA); the others ignore those fields."""
    body_limit: int | None = None
    """The largest request body in bytes (TA: Kestrel's 30 MB), or None."""
    channel: ChannelName | None = None
    """new-api only: the proxy behind it, whose facts the other fields are."""
    preset: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    """The `Quirks` fields of this dialect, when the caller passes no `Quirks` of its own."""


PLUS: Final = Profile(name="plus", lacks=frozenset({"retexture"}))
"""midjourney-proxy-plus (closed source): every route, both prefix styles, Bearer or
mj-api-secret. Unverified points are played permissively, as the simulator always did."""

TRUEAI: Final = Profile(
    name="trueai",
    lacks=frozenset({"change", "simple_change", "show", "query_tasks", "task_queue"}),
    mode_routes=frozenset({"/mj-{mode}"}),
    nested_selection=True,
    banned_later=True,
    shows_effective_mode=True,
    describe_link=True,
    ta_options=True,
    body_limit=30 * 1024 * 1024,
    preset={"auth": "ta", "unknown_fetch": "204"},
)
"""trueai-org midjourney-proxy (SubmitController.cs, TaskController.cs, WorkContext.cs)."""

NOVICEZK: Final = Profile(
    name="novicezk",
    lacks=frozenset(
        {
            "shorten",
            "action",
            "modal",
            "swap_face",
            "video",
            "edit",
            "upload_images",
            "show",
            "query_tasks",
            "image_seed",
            "cancel_task",
            "retexture",
        }
    ),
    aliases=False,
    not_found="spring",
    mode_routes=frozenset(),
    buttons=False,
    preset={"auth": "nz", "unknown_fetch": "empty200"},
)
"""novicezk/midjourney-proxy v2.6.3 (Spring Boot, context path /mj). Outside `/mj` Tomcat
would answer, which the audit could not verify; the simulator answers Spring's JSON there too."""

PROFILE_BY_NAME: Final[dict[ProfileName, Profile]] = {p.name: p for p in (PLUS, TRUEAI, NOVICEZK)}

CHANNELS: Final[tuple[ChannelName, ...]] = ("plus", "trueai", "novicezk")
"""The proxies `Simulator(upstream="new-api", channel=...)` can put behind new-api."""
DEFAULT_CHANNEL: Final[ChannelName] = "plus"
"""The channel behind new-api when none is named: a PLUS proxy, what resellers mostly front, and
the one channel type that serves every route new-api relays (change and the buttons alike)."""
_GATEWAY: Final[dict[str, Any]] = {"auth": "new-api", "new_api": True}
"""The `Quirks` new-api in front sets over its channel's."""


def new_api(channel: ChannelName = DEFAULT_CHANNEL) -> Profile:
    """new-api in front of a `channel` proxy: the channel's facts (routes, prefixes, 404s,
    account selection, banned prompts, task view, body limit) behind the gateway
    (`Quirks.new_api`, `mj_mcp.simulator.newapi`).

    new-api forwards each route it relays to the same path on the channel, so what works depends
    on the channel (relay/mjproxy_handler.go; the upstream audit of issue 13 A1, A4): `change`
    reaches `/mj/submit/change` (a trueai channel answers its empty 404, which new-api relays
    with the channel's status); a button reaches `/mj/submit/action` (a novicezk channel answers
    its Spring 404); simple-change never leaves the gateway (its distributor answers 503 "no
    channel" whatever the channel).
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    behind = PROFILE_BY_NAME[channel]
    return replace(behind, name="new-api", channel=channel, preset={**behind.preset, **_GATEWAY})


NEW_API: Final = new_api()
"""A new-api gateway in front of the default channel."""
PROFILE_BY_NAME["new-api"] = NEW_API
