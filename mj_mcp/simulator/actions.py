"""The TA / PLUS handlers that act on a finished task: buttons, their MODAL confirmation, and
NZ's U/V/R changes (which press the same buttons)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, get_args

from starlette.responses import Response

from mj_mcp.models import (
    CODE_EXISTED_MODAL,
    CODE_SUCCESS,
    ActionRequest,
    ChangeAction,
    ChangeRequest,
    ModalRequest,
    SimpleChangeRequest,
)
from mj_mcp.simulator.buttons import CHANGEABLE, KINDS, NZ_ACTIONS, REROLL_AS, Rule, buttons_of, rule_for
from mj_mcp.simulator.core import Kind, ModalNeed, SimTask, TaskSpec
from mj_mcp.simulator.handlers import Handlers
from mj_mcp.simulator.prompts import describe_text, model_family, normalize_prompt, numbered_line
from mj_mcp.simulator.render import image_size
from mj_mcp.simulator.views import full_view
from mj_mcp.simulator.wire import (
    MSG_BAD_STATUS,
    MSG_BASE64,
    MSG_EXISTS,
    MSG_OK,
    MSG_PARAM,
    MSG_PROMPT_EMPTY,
    MSG_UNKNOWN_ACTION,
    Answer,
    Call,
    envelope,
    read_body,
    reject,
    spring_error,
    task_missing,
    text,
    validate,
)

__all__ = ["MSG_MASK_SIZE", "Actions", "Press"]

MSG_MASK_SIZE: Final = "maskBase64图片尺寸与原图不一致"
"""Code 4 for a Vary (Region) mask whose size is not the picture's (the sources show no wording
of their own for it: the editor refuses such a mask; this is the upstreams' style of message)."""
_SIMPLE_CHANGE: Final = re.compile(r"^\s*(\S+)\s+(?:([UV])([1-4])|(R))\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Press:
    """A button pressed on a finished task, as /action, /change and /simple-change ask for it."""

    parent: SimTask
    custom_id: str
    state: str | None = None
    notify_hook: str | None = None
    remix: bool = False
    """Remix is on (request or account): a remixable button waits in MODAL for a new prompt."""
    action: str | None = None
    """The new task's action instead of the rule's (NZ's reroll by /change says REROLL)."""
    options: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    """The request's trueai-only fields (`SimTask.options`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    """The task a press makes: what its rule decided, for `Actions._from_parent`."""

    rule: Rule
    action: str
    kind: Kind
    index: int
    """The button's 1-based index (U2 → 2), or the parent's quadrant."""
    prompt: str | None
    modal: ModalNeed | None = None


class Actions(Handlers):
    """`/mj/submit/{action,modal,change,simple-change}`."""

    async def action(self, call: Call) -> Response:
        raw = await read_body(call, ActionRequest)
        if not text(raw, "taskId") or not text(raw, "customId"):
            reject(MSG_PARAM)
        req = validate(call, ActionRequest, raw)
        parent = self.store.get(req.task_id)
        if parent is None:
            task_missing()
        if self.store.snapshot(parent).status != "SUCCESS":
            reject(MSG_BAD_STATUS)
        if not any(b["customId"] == req.custom_id for b in buttons_of(parent)):
            reject(MSG_UNKNOWN_ACTION)
        remix = raw.get("enableRemix") is True or self.quirks.remix
        press = Press(
            parent=parent,
            custom_id=req.custom_id,
            state=req.state,
            notify_hook=req.notify_hook,
            remix=remix,
            options=self.options(raw, ActionRequest),
        )
        return self._press(call, press)

    def _press(self, call: Call, press: Press) -> Response:
        """Run one of the parent's buttons; shared by /action, /change and /simple-change."""
        found = rule_for(press.custom_id)
        if found is None:
            reject(MSG_UNKNOWN_ACTION)
        rule, match = found
        parent = press.parent
        if rule.special == "bookmark":
            return envelope(CODE_SUCCESS, MSG_OK, self.result_id(parent.id))
        action, kind = rule.action, rule.kind
        if action is None or kind is None:
            action = REROLL_AS.get(parent.action, parent.action)
            kind = "grid" if parent.kind == "upscale" else parent.kind
        index = int(match.groupdict().get("n") or parent.art_index or 1)
        if self.quirks.repeat_exists:
            self._refuse_a_repeat(parent, press.custom_id)
        self.check_queue()
        if rule.special == "all":
            return self._imagine_all(call, press, rule)
        prompt = parent.prompt
        if rule.special == "prompt_line":
            prompt = numbered_line(parent.result_text or "", index) or parent.prompt
        modal = rule.modal or ("prompt" if press.remix and rule.remixable else None)
        job = _Job(rule=rule, action=press.action or action, kind=kind, index=index, prompt=prompt, modal=modal)
        task = self._from_parent(call, press, job)
        return self.modal_reply(task) if modal else self.accepted(task.id)

    def _refuse_a_repeat(self, parent: SimTask, custom_id: str) -> None:
        """Code 21 "task exists" for a press the parent already had (`Quirks.repeat_exists`)."""
        done = next(
            (t for t in self.store.tasks.values() if (t.parent_id, t.custom_id) == (parent.id, custom_id)), None
        )
        if done is None:
            return
        snap = self.store.snapshot(done)
        properties = {"status": snap.status, "imageUrl": full_view(done, snap)["imageUrl"]}
        raise Answer(envelope(CODE_EXISTED_MODAL, MSG_EXISTS, self.result_id(done.id), properties))

    def _imagine_all(self, call: Call, press: Press, rule: Rule) -> Response:
        """Describe's "Imagine all": one imagine per described prompt, their ids joined by commas."""
        lines = [numbered_line(press.parent.result_text or "", n) for n in range(1, 5)]
        # The new tasks carry neither the request's state nor its notifyHook.
        bare = Press(parent=press.parent, custom_id=press.custom_id)
        ids = [
            self._from_parent(call, bare, _Job(rule=rule, action="IMAGINE", kind="grid", index=1, prompt=line)).id
            for line in lines
            if line
        ]
        return envelope(CODE_SUCCESS, MSG_OK, ",".join(ids))

    def _from_parent(self, call: Call, press: Press, job: _Job) -> SimTask:
        parent, spec = press.parent, KINDS[job.kind]
        # An upscale shows one quadrant of the parent's picture; every other job draws anew.
        art_index = (job.index if parent.art_index is None else parent.art_index) if spec.quadrant else None
        extra: dict[str, Any] = {"action_index": job.index} if job.action == "UPSCALE" else {}
        task_spec = TaskSpec(
            action=job.action,
            kind=job.kind,
            prompt=job.prompt,
            description=f"/up {parent.id} {job.rule.tag.format(n=job.index)}",
            art_text=(job.prompt or "") if job.rule.special else parent.art_text,
            art_key=parent.art_key if spec.quadrant else None,
            queued=job.modal is None,
            state=press.state,
            notify_hook=press.notify_hook,
            parent_id=parent.id,
            custom_id=press.custom_id,
            art_index=art_index,
            modal_need=job.modal,
            extra=extra,
            options=press.options,
            result_text=parent.result_text if spec.text_result else None,
        )
        task = self.create(call, task_spec)
        self._inherit(task, parent, url_mode=call.mode)
        return task

    @staticmethod
    def _inherit(task: SimTask, parent: SimTask, *, url_mode: str | None) -> None:
        """What a button's task takes over from its parent: size, source, describe's seed, mode."""
        spec = KINDS[task.kind]
        if spec.quadrant or spec.describes or spec.animates:
            task.size = parent.size
        if task.kind == parent.kind and spec.keeps_source:
            task.source_url = parent.source_url
        elif spec.animates:
            task.source_url = f"{parent.base}/sim/images/{parent.id}.png"
        if spec.describes:
            task.art_key = f"{parent.art_key}/{task.id}"
            task.result_text = describe_text(task.art_key, parent.size)
        if parent.mode and not url_mode:
            task.mode = parent.mode

    async def modal(self, call: Call) -> Response:
        raw = await read_body(call, ModalRequest)
        if not text(raw, "taskId"):
            reject(MSG_PARAM)
        req = validate(call, ModalRequest, raw)
        task = self.store.get(req.task_id)
        if task is None:
            task_missing()
        if task.queued_at is not None or task.cancelled_at is not None:
            # Already confirmed: answer as before, change nothing (a retried modal is harmless).
            return self.accepted(task.id)
        prompt = req.prompt or task.prompt or task.final_prompt or ""
        if not prompt:
            reject(MSG_PROMPT_EMPTY)
        self.check_banned(prompt)
        self._check_modal_need(task, prompt, req.mask_base64)
        self.check_queue()
        task.prompt = prompt
        task.art_text = prompt
        task.final_prompt = normalize_prompt(prompt, task.mode)
        task.family = model_family(prompt)
        self.store.judge(task, prompt)
        self.store.enqueue(task)
        return self.accepted(task.id)

    def _check_modal_need(self, task: SimTask, prompt: str, mask_base64: str | None) -> None:
        """Custom Zoom needs a `--zoom` between 1 and 2, Vary (Region) a PNG mask."""
        if task.modal_need == "zoom":
            zoom = re.search(r"--zoom\s+(\d+(?:\.\d+)?)", prompt)
            if zoom is None or not 1 <= float(zoom.group(1)) <= 2:
                reject("--zoom参数错误，取值范围 1~2")
        if task.modal_need == "mask":
            if not mask_base64:
                reject("maskBase64不能为空")
            mask = mask_base64.strip()
            if mask.startswith("data:") and not mask.startswith("data:image/png;base64,"):
                # TA strips only "data:image/png;base64," before decoding the mask.
                reject(MSG_BASE64)
            self._check_mask_size(task, self.blob(mask).data)

    def _check_mask_size(self, task: SimTask, mask: bytes) -> None:
        """Midjourney's inpaint editor takes only a mask the size of the picture it varies."""
        parent = self.store.get(task.parent_id) if task.parent_id else None
        if parent is not None and image_size(mask) != parent.size:
            reject(MSG_MASK_SIZE)

    async def change(self, call: Call) -> Response:
        raw = await read_body(call, ChangeRequest)
        if not text(raw, "taskId"):
            reject("taskId不能为空")
        action = raw.get("action")
        # NZ binds `action` to its TaskAction enum: a known action that is not U/V/R is a code 4,
        # a word outside the enum a binding error (400, from the model's Literal).
        if action is None or (action in NZ_ACTIONS and action not in get_args(ChangeAction)):
            reject("action参数错误")
        # The model refuses U/V without an index, as a client should; NZ itself only fails later.
        no_index = action in ("UPSCALE", "VARIATION") and raw.get("index") is None
        req = validate(call, ChangeRequest, {**raw, "index": 1} if no_index else raw)
        tag = "R" if req.action == "REROLL" else f"{req.action[0]}{'' if no_index else req.index}"
        return self._change_parent(call, req.task_id, tag, state=req.state, notify_hook=req.notify_hook)

    async def simple_change(self, call: Call) -> Response:
        raw = await read_body(call, SimpleChangeRequest)
        content = text(raw, "content")
        match = _SIMPLE_CHANGE.match(content)
        if match is None:
            reject("content参数错误")
        req = validate(call, SimpleChangeRequest, raw)
        task_id, letter, digit, reroll = match.groups()
        tag = "R" if reroll else f"{letter.upper()}{digit}"
        return self._change_parent(call, task_id, tag, state=req.state, notify_hook=req.notify_hook)

    def _change_parent(
        self, call: Call, task_id: str, tag: str, *, state: str | None, notify_hook: str | None
    ) -> Response:
        """NZ's U/V/R on a grid: `tag` is `U1`..`U4`, `V1`..`V4` or `R`."""
        parent = self.store.get(task_id)
        if parent is None:
            task_missing()
        if self.store.snapshot(parent).status != "SUCCESS":
            reject(MSG_BAD_STATUS)
        if parent.action not in CHANGEABLE:
            reject("关联任务不允许执行变化")
        if tag in ("U", "V"):
            # NZ unboxes the null index into an int: a NullPointerException, Spring's 500.
            raise Answer(spring_error(500, call.path, call.clock.now()))
        h = parent.job_hash
        if tag == "R":
            reroll = f"MJ::JOB::reroll::0::{h}::SOLO"
            press = Press(parent=parent, custom_id=reroll, state=state, notify_hook=notify_hook, action="REROLL")
            return self._press(call, press)
        verb = "upsample" if tag[0] == "U" else "variation"
        custom_id = f"MJ::JOB::{verb}::{tag[1]}::{h}"
        return self._press(call, Press(parent=parent, custom_id=custom_id, state=state, notify_hook=notify_hook))
