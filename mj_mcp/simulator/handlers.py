"""What every TA / PLUS handler shares: the store, the uploads, and the upstream's common checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, cast

from starlette.responses import JSONResponse, Response

from mj_mcp.models import (
    CODE_BANNED_PROMPT,
    CODE_EXISTED_MODAL,
    CODE_FAILURE,
    CODE_IN_QUEUE,
    CODE_NOT_FOUND,
    CODE_QUEUE_REJECTED,
    CODE_SUCCESS,
    WireModel,
)
from mj_mcp.simulator.core import UNFINISHED, SimTask, TaskSpec, TaskStore
from mj_mcp.simulator.media import Blob, Media, decode_base64
from mj_mcp.simulator.profiles import Profile
from mj_mcp.simulator.quirks import Quirks
from mj_mcp.simulator.views import INSTANCE_ID
from mj_mcp.simulator.wire import (
    MSG_BANNED,
    MSG_BASE64,
    MSG_MODAL,
    MSG_NO_ACCOUNT,
    MSG_OK,
    MSG_QUEUE_FULL_NZ,
    MSG_QUEUE_FULL_TA,
    Answer,
    Call,
    envelope,
    reject,
)
from mj_mcp.upstreams import EXTRA_FIELDS

__all__ = ["MSG_CONCURRENCY", "Handlers"]

MSG_CONCURRENCY: Final = "并发数已达上限"
_SELECTION: Final = ("instanceId", "modes", "remix")
"""The account-selection fields (TA also reads nijiRemix, remixAutoConsidered and remark)."""


class Handlers:
    """Base of the handler groups (submits, buttons, reads) of the TA / PLUS upstream."""

    def __init__(self, store: TaskStore, media: Media) -> None:
        self.store = store
        self.media = media

    @property
    def quirks(self) -> Quirks:
        return self.store.quirks

    @property
    def profile(self) -> Profile:
        return self.store.profile

    def selection(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The account selection the upstream reads: inside `accountFilter` (TA), or at the top
        level (PLUS). Whatever sits in the other place is ignored, as the real one ignores it."""
        source: Any = raw.get("accountFilter") if self.profile.nested_selection else raw
        if not isinstance(source, Mapping):
            return {}
        fields = cast(Mapping[str, Any], source)
        return {key: fields[key] for key in _SELECTION if fields.get(key) is not None}

    def create(self, call: Call, spec: TaskSpec) -> SimTask:
        return self.store.create(spec, base=call.base, url_mode=call.mode)

    @staticmethod
    def options(raw: Mapping[str, Any], model: type[WireModel]) -> dict[str, Any]:
        """The trueai-only fields (`EXTRA_FIELDS`) of `model` that the request carried (`SimTask.options`)."""
        return {key: raw[key] for key in sorted(EXTRA_FIELDS.get(model, ())) if raw.get(key) is not None}

    def result_id(self, task_id: str) -> str | int:
        return int(task_id) if self.quirks.result_as_number and task_id.isdigit() else task_id

    def accepted(self, task_id: str) -> Response:
        """Code 1, or code 22 while `Quirks.queue_position` jobs are ahead."""
        properties: dict[str, Any] = {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
        ahead = self.quirks.queue_position
        if ahead > 0:
            properties["numberOfQueues"] = ahead
            return envelope(CODE_IN_QUEUE, f"排队中，前面还有{ahead}个任务", self.result_id(task_id), properties)
        return envelope(CODE_SUCCESS, MSG_OK, self.result_id(task_id), properties)

    def modal_reply(self, task: SimTask) -> Response:
        return envelope(
            CODE_EXISTED_MODAL, MSG_MODAL, self.result_id(task.id), {"finalPrompt": task.prompt, "remix": True}
        )

    @staticmethod
    def blob(value: str) -> Blob:
        """A base64 image field (data URI or bare base64) as bytes; code 4 when it is not."""
        blob = decode_base64(value)
        if blob is None:
            reject(MSG_BASE64)
        return blob

    def blob_or_url(self, value: str) -> Blob | str:
        """`image` of video/edits: TA also takes an http(s) URL, passed on as it is."""
        return value if re.match(r"^https?://", value, re.IGNORECASE) else self.blob(value)

    def check_banned(self, prompt: str) -> None:
        """Code 24 for a banned prompt, where the upstream refuses it at once (not TA, which
        accepts it and fails the job later: `TaskStore.judge`)."""
        word = self.store.banned_word(prompt)
        if word is not None and not self.profile.banned_later:
            reject(MSG_BANNED, CODE_BANNED_PROMPT, promptEn=prompt, bannedWord=word)

    def check_queue(self, *, limit_as_code: bool = False) -> None:
        """Refuse a new job when no account can take it, the queue is full or the user is at
        TA's concurrency limit (`limit_as_code`: as imagine answers it, code 4)."""
        limit = self.quirks.max_concurrent
        if limit > 0 and self._unfinished() >= limit:
            if limit_as_code:
                reject(MSG_CONCURRENCY)
            raise Answer(logic_error(MSG_CONCURRENCY, self.store.clock.now()))
        if self.quirks.no_account:
            reject(MSG_NO_ACCOUNT, CODE_NOT_FOUND)
        if self.quirks.queue_full == "9":
            reject(MSG_QUEUE_FULL_TA, CODE_FAILURE)
        if self.quirks.queue_full == "23":
            reject(MSG_QUEUE_FULL_NZ, CODE_QUEUE_REJECTED)

    def _unfinished(self) -> int:
        return sum(1 for t in self.store.tasks.values() if self.store.snapshot(t).status in UNFINISHED)


def logic_error(message: str, now: float) -> Response:
    """TA's LogicException reply (CustomLogicExceptionFilterAttribute): HTTP 200."""
    return JSONResponse({"success": False, "code": -1, "message": message, "timestamp": int(now * 1000)})
