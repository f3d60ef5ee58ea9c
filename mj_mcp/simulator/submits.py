"""The TA / PLUS submit handlers that start a job from a prompt or images (and the upload)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final, Literal

from starlette.responses import Response

from mj_mcp.models import (
    CODE_SUCCESS,
    BlendRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    RetextureRequest,
    ShortenRequest,
    ShowRequest,
    SwapFaceRequest,
    UploadRequest,
    VideoRequest,
)
from mj_mcp.simulator.buttons import BLEND_RATIOS
from mj_mcp.simulator.core import SimTask, TaskSpec
from mj_mcp.simulator.handlers import Handlers
from mj_mcp.simulator.media import Blob
from mj_mcp.simulator.prompts import LONG_SIDE, describe_text, normalize_prompt, shorten_text
from mj_mcp.simulator.render import image_size
from mj_mcp.simulator.wire import MSG_OK, MSG_PROMPT_EMPTY, Call, envelope, read_body, reject, text, validate

__all__ = ["Submits"]

_KEPT: Final = ("accountFilter",)
"""Read besides the request model's fields: TA's nested account selection."""
MSG_NO_UPLOAD: Final = "禁止上传"
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class Submits(Handlers):
    """`/mj/submit/{imagine,blend,describe,shorten,video,edits,upload-discord-images,show}` and
    `/mj/insight-face/swap`."""

    async def imagine(self, call: Call) -> Response:
        raw = await read_body(call, ImagineRequest, keep=_KEPT)
        if not text(raw, "prompt"):
            reject(MSG_PROMPT_EMPTY)
        req = validate(call, ImagineRequest, raw)
        self.check_banned(req.prompt)
        images = [self.blob(v) for v in req.base64_array or []]
        self.check_queue(limit_as_code=True)
        prompt = " ".join([*(self.media.keep(call.base, i) for i in images), req.prompt])
        # TA: `--video` in an imagine prompt makes it a video job.
        video = re.search(r"--video\b", req.prompt) is not None
        task = self.create(
            call,
            TaskSpec(
                action="VIDEO" if video else "IMAGINE",
                kind="video" if video else "grid",
                prompt=prompt,
                description=f"/imagine {prompt}",
                art_text=req.prompt,
                selection=self.selection(raw),
                bot_type=req.bot_type,
                state=req.state,
                notify_hook=req.notify_hook,
            ),
        )
        return self.accepted(task.id)

    async def blend(self, call: Call) -> Response:
        raw = await read_body(call, BlendRequest, keep=_KEPT)
        images = raw.get("base64Array")
        if not isinstance(images, list) or not 2 <= len(images) <= 5:  # pyright: ignore[reportUnknownArgumentType]
            reject("图片参数错误，2~5张图片")
        req = validate(call, BlendRequest, raw)
        blobs = [self.blob(v) for v in req.base64_array]
        self.check_queue()
        ratio = BLEND_RATIOS[req.dimensions or "SQUARE"]
        prompt = " ".join(self.media.keep(call.base, b) for b in blobs) + f" --ar {ratio}"
        task = self.create(
            call,
            TaskSpec(
                action="BLEND",
                kind="grid",
                prompt=prompt,
                description=f"/blend {{id}} {len(blobs)}",
                art_text=f"blend of {len(blobs)} images",
                selection=self.selection(raw),
                bot_type=req.bot_type,
                state=req.state,
                notify_hook=req.notify_hook,
            ),
        )
        return self.accepted(task.id)

    async def describe(self, call: Call) -> Response:
        raw = await read_body(call, DescribeRequest, keep=(*_KEPT, "link"))
        link = text(raw, "link") if self.profile.describe_link else ""
        if link:
            # TA: an image URL in `link` instead of an upload (SubmitController.cs).
            return self._describe(call, raw, link, None)
        if not text(raw, "base64"):
            reject("base64不能为空")
        if self.quirks.uploads_forbidden:
            reject(MSG_NO_UPLOAD)
        req = validate(call, DescribeRequest, raw)
        return self._describe(call, raw, None, self.blob(req.base64))

    def _describe(self, call: Call, raw: dict[str, Any], link: str | None, blob: Blob | None) -> Response:
        self.check_queue()
        data = blob.data if blob is not None else (link or "").encode()
        size = (image_size(blob.data) if blob is not None else None) or (LONG_SIDE, LONG_SIDE)
        key = hashlib.sha256(data).hexdigest()
        task = self.create(
            call,
            TaskSpec(
                action="DESCRIBE",
                kind="describe",
                prompt=None,
                description="/describe {id}.png",
                art_text="",
                art_key=key,
                selection=self.selection(raw),
                bot_type=text(raw, "botType") or None,
                state=text(raw, "state") or None,
                notify_hook=text(raw, "notifyHook") or None,
                source_url=self.media.keep(call.base, blob) if blob is not None else link,
                result_text=describe_text(key, size),
                options=self.options(raw, DescribeRequest),
            ),
        )
        task.size = size
        return self.accepted(task.id)

    async def shorten(self, call: Call) -> Response:
        raw = await read_body(call, ShortenRequest, keep=_KEPT)
        if not text(raw, "prompt"):
            reject(MSG_PROMPT_EMPTY)
        req = validate(call, ShortenRequest, raw)
        self.check_banned(req.prompt)
        self.check_queue()
        task = self.create(
            call,
            TaskSpec(
                action="SHORTEN",
                kind="shorten",
                prompt=req.prompt,
                description=f"/shorten {req.prompt}",
                art_text=req.prompt,
                selection=self.selection(raw),
                bot_type=req.bot_type,
                state=req.state,
                notify_hook=req.notify_hook,
                result_text=shorten_text(req.prompt),
            ),
        )
        return self.accepted(task.id)

    async def swap_face(self, call: Call) -> Response:
        raw = await read_body(call, SwapFaceRequest)
        source, target = text(raw, "sourceBase64"), text(raw, "targetBase64")
        if not source:
            reject("人脸图片不能为空")
        if not target:
            reject("目标图片不能为空")
        if source == target:
            reject("人脸图片和目标图片不能相同")
        req = validate(call, SwapFaceRequest, raw)
        face, picture = self.blob(req.source_base64), self.blob(req.target_base64)
        self.check_queue()
        self.media.keep(call.base, face)
        target_url = self.media.keep(call.base, picture)
        task = self.create(
            call,
            TaskSpec(
                action="SWAP_FACE",
                kind="swap",
                prompt=None,
                description="/swap_face",
                art_text="face swap",
                bot_type="INSIGHT_FACE",
                state=req.state,
                notify_hook=req.notify_hook,
                source_url=target_url,
            ),
        )
        return self.accepted(task.id)

    async def video(self, call: Call) -> Response:
        raw = await read_body(call, VideoRequest)
        if not text(raw, "prompt"):
            reject("Prompt 不能为空")
        req = validate(call, VideoRequest, raw)
        self.check_banned(req.prompt)
        image = self.blob_or_url(req.image) if req.image else None
        self.check_queue()
        first_frame = self.media.keep(call.base, image) if image is not None else None
        task = self._from_picture(call, "video", req, first_frame)
        task.options = self.options(raw, VideoRequest)
        echoed = f"{first_frame or ''} {req.prompt} --video 1{self._video_parameters(call, req)}"
        task.final_prompt = normalize_prompt(echoed, task.mode)
        return self.accepted(task.id)

    def _video_parameters(self, call: Call, req: VideoRequest) -> str:
        """The parameters the upstream adds to a video prompt (TaskService.cs SubmitVideo on TA)."""
        end = ""
        if self.profile.ta_options and req.loop:
            end = " --end loop"
        elif self.profile.ta_options and req.end_image:
            end = f" --end {self.media.keep(call.base, self.blob_or_url(req.end_image))}"
        # TA adds --bs only for 1 and 2: 4 is Midjourney's default.
        batch = f" --bs {req.batch_size}" if self.profile.ta_options and req.batch_size in (1, 2) else ""
        return f"{end} --motion {req.motion or 'low'}{batch}"

    async def edit(self, call: Call) -> Response:
        raw = await read_body(call, EditsRequest)
        if not text(raw, "prompt") or not text(raw, "image"):
            reject("image或prompt不能为空")
        req = validate(call, EditsRequest, raw)
        self.check_banned(req.prompt)
        image = self.blob_or_url(req.image)
        self.check_queue()
        url = self.media.keep(call.base, image)
        task = self._from_picture(call, "edit", req, url)
        task.final_prompt = f"{task.final_prompt} --dref {url}"
        return self.accepted(task.id)

    async def retexture(self, call: Call) -> Response:
        """TA's retexture: the edits DTO, the same checks, a RETEXTURE task (SubmitController.cs)."""
        raw = await read_body(call, RetextureRequest, keep=_KEPT)
        if not text(raw, "prompt") or not text(raw, "image"):
            reject("image或prompt不能为空")
        if self.quirks.uploads_forbidden:
            reject(MSG_NO_UPLOAD)
        req = validate(call, RetextureRequest, raw)
        image = self.blob_or_url(req.image)
        self.check_queue()
        url = self.media.keep(call.base, image)
        task = self._from_picture(call, "edit", req, url, action="RETEXTURE", selection=self.selection(raw))
        task.final_prompt = f"{task.final_prompt} --sref {url}"
        return self.accepted(task.id)

    def _from_picture(
        self,
        call: Call,
        kind: Literal["video", "edit"],
        req: VideoRequest | EditsRequest | RetextureRequest,
        source_url: str | None,
        *,
        action: str | None = None,
        selection: dict[str, Any] | None = None,
    ) -> SimTask:
        """The task of a job that works on a given picture by a prompt (video, edits, retexture)."""
        return self.create(
            call,
            TaskSpec(
                action=action or kind.upper(),
                selection=selection,
                kind=kind,
                prompt=req.prompt,
                description=f"/{kind} {req.prompt}",
                art_text=req.prompt,
                state=req.state,
                notify_hook=req.notify_hook,
                source_url=source_url,
            ),
        )

    async def upload(self, call: Call) -> Response:
        raw = await read_body(call, UploadRequest)
        images = raw.get("base64Array")
        if not isinstance(images, list) or not images:
            reject("base64 参数错误")
        req = validate(call, UploadRequest, raw)
        blobs = [self.blob(v) for v in req.base64_array]
        urls = [self.media.keep(call.base, b) for b in blobs]
        return envelope(CODE_SUCCESS, MSG_OK, urls)

    async def show(self, call: Call) -> Response:
        raw = await read_body(call, ShowRequest)
        job = text(raw, "jobId")
        if not job:
            reject("请填写 job id 或 url")
        req = validate(call, ShowRequest, raw)
        found = _UUID.search(req.job_id)
        exact = _UUID.fullmatch(req.job_id) is not None
        if found is None or not (exact or re.match(r"^https?://", req.job_id, re.IGNORECASE)):
            reject("job id 格式错误")
        job_hash = found.group(0).lower()
        for task in self.store.visible():
            if task.job_hash == job_hash and self.store.snapshot(task).status != "FAILURE":
                return self.accepted(task.id)
        self.check_queue()
        task = self.create(
            call,
            TaskSpec(
                action="SHOW",
                kind="grid",
                prompt=f"recalled job {job_hash}",
                description=f"/show {job_hash}",
                art_text=f"job {job_hash}",
                art_key=job_hash,
                state=req.state,
                notify_hook=req.notify_hook,
                job_hash=job_hash,
            ),
        )
        return self.accepted(task.id)
