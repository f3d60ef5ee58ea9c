"""A job's inputs, made ready and checked before anything is paid for.

`Inputs.prepare(request)` is the part of `Jobs.prepare` that concerns what the caller gave: it
checks the prompt's Midjourney parameters (`promptcheck`), turns image arguments (data URIs,
base64, URLs, files and task references) into what the endpoint takes, and applies the rules
of a `modal` call. Every refusal is an `InputError` that names the fix; nothing has been sent.

The modal rules need to know what the MODAL task waits for (a Custom Zoom prompt, a Vary
(Region) mask, a remix prompt) and the size of the picture being varied. The button is known
when this server pressed it (`started` remembers the last few presses); otherwise the task is
read. Where neither tells, the upstream is left to judge, as before.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import anyio.to_thread

from mj_mcp.client import MjClient
from mj_mcp.errors import InputError, MjError
from mj_mcp.images import classify
from mj_mcp.loading import ImageLoader
from mj_mcp.masks import Region, check_mask, region_mask
from mj_mcp.models import ActionRequest, DescribeRequest, ImagineRequest, ModalRequest, Task, WireModel
from mj_mcp.promptcheck import check_prompt, parameters_of

__all__ = ["IMAGE_FIELDS", "Inputs"]

IMAGE_FIELDS: Final = (
    "base64_array", "base64", "mask_base64", "source_base64", "target_base64", "image", "end_image"
)  # fmt: skip
REMEMBERED: Final = 256
"""Button presses (and image sizes) remembered for the modal rules."""

Need = Literal["zoom", "mask", "other"]
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class _Modal:
    """What a MODAL task waits for, and the task whose picture it varies (None: unknown)."""

    need: Need
    parent_id: str | None
    task: Task | None


class Inputs:
    """Prepares and checks the inputs of jobs (see the module docstring)."""

    def __init__(self, client: MjClient, images: ImageLoader) -> None:
        self._client = client
        self._images = images
        self._pressed: OrderedDict[str, tuple[str, str]] = OrderedDict()
        """New task id → (the task whose button made it, that button's customId)."""
        self._sizes: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def started(self, request: WireModel, task_id: str) -> None:
        """Remember which button started `task_id`, for a `modal` call on it."""
        if isinstance(request, ActionRequest):
            _remember(self._pressed, task_id, (request.task_id, request.custom_id))

    async def prepare(self, request: WireModel) -> dict[str, Any]:
        """The updates that make `request` ready to send; InputError for what must be fixed."""
        prompt = getattr(request, "prompt", None)
        if isinstance(prompt, str) and prompt:
            check_prompt(prompt)
        updates: dict[str, Any] = {}
        if isinstance(request, ModalRequest):
            await self._check_modal(request)
        images = self._images
        if isinstance(request, ImagineRequest) and request.base64_array:
            updates.update(await self._image_prompts(request))
        elif (
            isinstance(request, DescribeRequest) and self._client.profile.describe_link and self._is_url(request.base64)
        ):
            # trueai can refuse uploads (EnableUserCustomUploadBase64) but reads a URL in `link`.
            updates.update(link=await images.check_url(request.base64), base64=None)
        else:
            for attr in IMAGE_FIELDS:
                value: str | list[str] | None = getattr(request, attr, None)
                if value is not None:
                    updates[attr] = await self._image_field(attr, value)
        return updates

    async def region_mask(self, task_id: str, region: Region) -> str:
        """The Vary (Region) mask for MODAL task `task_id`, as a PNG data URI: `region` white."""
        modal = await self._modal(task_id)
        if modal.need not in ("mask", "other"):
            raise InputError(
                f"Task {task_id} waits for a Custom Zoom prompt, not a Vary (Region) mask; nothing was sent.",
                hint="Leave region out and pass a prompt with --zoom between 1 and 2.",
            )
        width, height = await self._size_of(modal.parent_id, task_id)
        png = await anyio.to_thread.run_sync(region_mask, region, width, height)
        return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}"

    # -- images --------------------------------------------------------------------------------

    def _is_url(self, value: str) -> bool:
        """An argument the server passes on as a URL (a task reference is read instead)."""
        return self._images.reference_in(value) is None and classify(value) == "url"

    async def _image_prompts(self, request: ImagineRequest) -> dict[str, Any]:
        urls: list[str] = []
        datas: list[str] = []
        for item in request.base64_array or ():
            if self._is_url(item):
                urls.append(await self._images.check_url(item))
            else:
                datas.append(await self._images.to_data_uri(item))
        updates: dict[str, Any] = {"base64_array": datas or None}
        if urls:
            # Midjourney reads image prompts as URLs at the very start of the prompt.
            updates["prompt"] = " ".join([*urls, request.prompt])
        return updates

    async def _image_field(self, attr: str, value: str | list[str]) -> str | list[str] | None:
        images = self._images
        if not value:
            # Callers copying the upstreams' documented examples send "" or [] for "no image";
            # passed on, the upstream would try to decode it and fail the job, so it is dropped.
            return None
        if isinstance(value, list):
            return [await images.to_data_uri(v) for v in value]
        if attr in ("image", "end_image") and self._is_url(value):
            # video/edits take URLs as they are; they must still be public addresses.
            return await images.check_url(value)
        if attr == "mask_base64":
            # Upstreams strip only "data:image/png;base64," from a Vary Region mask.
            return await images.to_png_data_uri(value)
        return await images.to_data_uri(value)

    # -- modal -----------------------------------------------------------------------------------

    async def _check_modal(self, request: ModalRequest) -> None:
        """Refuse a modal call the upstream would refuse (or run wrongly), before it is paid for."""
        modal = await self._modal(request.task_id)
        if modal.need == "zoom":
            _check_zoom(request, modal.task)
        elif modal.need == "mask" and not request.mask_base64:
            raise InputError(
                f"Task {request.task_id} is a Vary (Region): it needs the area to repaint; nothing was sent.",
                hint='Call modal again with region (e.g. {"x":0.25,"y":0.25,"width":0.5,"height":0.5}, fractions '
                "of the image) or maskBase64 (white = the area to change), and a prompt for the new content.",
            )
        if request.mask_base64 and modal.need != "zoom":
            mask = await self._images.load(request.mask_base64)
            width, height = await self._size_of(modal.parent_id, request.task_id, required=modal.need == "mask")
            if width:
                await anyio.to_thread.run_sync(
                    lambda: check_mask(mask.data, width, height, task_id=modal.parent_id or request.task_id)
                )

    async def _modal(self, task_id: str) -> _Modal:
        pressed = self._pressed.get(task_id)
        task: Task | None = None
        if pressed is None or "CustomZoom" in pressed[1]:
            try:
                task = await self._client.fetch(task_id)
            except MjError:
                # A gateway's copy may lag behind (new-api): the upstream judges the call itself.
                task = None
        if pressed is not None:
            return _Modal(_need(pressed[1], ""), pressed[0], task)
        if task is None:
            return _Modal("other", None, None)
        return _Modal(_need(task.custom_id or "", task.action or ""), task.parent_id, task)

    async def _size_of(self, parent_id: str | None, task_id: str, *, required: bool = True) -> tuple[int, int]:
        """The size of the picture a MODAL task varies ((0, 0) when unknown and not `required`)."""
        if parent_id is None:
            if not required:
                return 0, 0
            raise InputError(
                f"The image that task {task_id} varies is not known here, so no mask can be made or checked; "
                "nothing was sent.",
                hint="Pass maskBase64: a black-and-white PNG the size of that image (white = the area to change).",
            )
        known = self._sizes.get(parent_id)
        if known is not None:
            return known
        parent = await self._client.fetch(parent_id)
        if parent.image_width and parent.image_height:
            size = parent.image_width, parent.image_height
        else:
            loaded = await self._images.load(parent_id)
            size = loaded.width, loaded.height
        _remember(self._sizes, parent_id, size)
        return size


def _need(custom_id: str, action: str) -> Need:
    action = action.upper()
    if "CustomZoom" in custom_id or action == "CUSTOM_ZOOM":
        return "zoom"
    if "Inpaint" in custom_id or action in ("INPAINT", "VARY_REGION"):
        return "mask"
    return "other"


def _check_zoom(request: ModalRequest, task: Task | None) -> None:
    # Without a prompt the upstream uses the task's own, which has no --zoom unless one was typed.
    prompt = request.prompt or (task.final_prompt or task.prompt if task is not None else None) or ""
    zooms = [p for p in parameters_of(prompt) if p.name == "zoom"]
    if not zooms:
        example = f"{prompt} --zoom 1.5".strip()
        raise InputError(
            f"Task {request.task_id} is a Custom Zoom: its prompt needs --zoom between 1 and 2; nothing was sent.",
            hint=f"Call modal again with prompt={example!r}.",
        )


def _remember(memory: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)
