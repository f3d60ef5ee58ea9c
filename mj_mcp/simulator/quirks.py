"""`Quirks`: the switches that make the simulator play another upstream dialect.

The defaults are TA / PLUS behaviour; each switch is one dialect of docs/upstream-api.md §7. The
object is shared by every layer and read at request time, so a test may flip a switch between
requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["DEFAULT_BANNED_WORDS", "FAILING_MARKER", "Quirks"]

DEFAULT_BANNED_WORDS: Final = ("bannedword",)
FAILING_MARKER: Final = "simulate-failure"
"""A prompt containing this text makes the job fail after it started."""


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
    repeat_exists: bool = False
    """Pressing a button a task already pressed (an upscale, variation or change done before) answers
    code 21 "任务已存在" with the earlier task's id and its `status`/`imageUrl` in properties:
    "task already exists", as NZ's and PLUS's docs describe 21 (the upstream audit of issue 13 B6);
    otherwise every press makes a new task."""
    auth: Literal["any", "nz", "ta", "new-api"] = "any"
    """Which headers carry the key (docs/upstream-api.md §1.1), when the simulator has an `api_key`:
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
    answer code 21 and wait in MODAL for a new prompt, as with `enableRemix: true` (docs/upstream-api.md §3)."""
    list_by_condition: bool = True
    """False: `/mj/task/list-by-condition` (and `/list-by-ids`) answer 404."""
    cancel_empty_body: bool = True
    """TA answers cancel with an empty 200; False gives PLUS's `{code, description, result}`."""
    no_account: bool = False
    """Refuse every new job with code 3 `无可用的账号实例`: no account can take it (all disabled,
    none with the requested mode)."""
    na_forbidden_models: frozenset[str] = frozenset()
    """new-api: models the token may not use (e.g. `mj_video`): a submit for one is refused by
    its distributor with HTTP 403 `该令牌无权访问模型 <model>`."""
    na_no_channel: frozenset[str] = frozenset()
    """new-api: models no channel serves, besides `mj_` (what simple-change and a change without
    `action` ask for): HTTP 503 `当前分组 default 下对于模型 <model> 无可用渠道`."""
    max_concurrent: int = 0
    """> 0: TA's per-user limit: a new job while this many are unfinished is refused with
    `并发数已达上限` (code 4 on imagine, TA's `{success:false, code:-1}` on other submits)."""
    uploads_forbidden: bool = False
    """TA with `EnableUserCustomUploadBase64=false`: describe refuses base64 with `禁止上传`
    (a `link` still works where the profile takes one)."""
    official_cdn: bool = False
    """TA with `EnableFillOfficialCdn`: a finished VIDEO task's imageUrl is its first video (an .mp4
    link), and videoUrl and imageUrls repeat the video links (TaskInfo.cs:780-806; audit B10)."""
    account_refusal: Literal["disabled", "unavailable", "no_permission"] | None = None
    """TA's account checks after the key matched: 401 `账号已禁用`, 403 `账号不可用` or
    401 `账号无权限`, as plain text like its other refusals."""
