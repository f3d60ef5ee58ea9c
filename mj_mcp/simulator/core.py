"""The task store and the job lifecycle: the upstream's state, whatever API is put in front of it.

A task stores *when* it was queued; its status, progress and times are derived from the clock
whenever somebody looks (`TaskStore.snapshot`). Nothing runs in the background, so tests advance a
clock instead of sleeping and a standalone server needs no scheduler. With the default
`job_seconds=8`: NOT_START at submit, SUBMITTED "0%" at 1 s, IN_PROGRESS 15/38/62/85% (with a
preview image) from 2 s, SUCCESS at 8 s; a failing job ends in FAILURE at 4 s. Every point
scales with `job_seconds`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mj_mcp.clock import Clock
from mj_mcp.simulator.profiles import DEFAULT_MODE, PLUS, Profile
from mj_mcp.simulator.prompts import LONG_SIDE, aspect_size, model_family, normalize_prompt, prompt_mode
from mj_mcp.simulator.quirks import Quirks

__all__ = [
    "BANNED_REASON",
    "CANCEL_REASON",
    "FAIL_REASON",
    "UNFINISHED",
    "Kind",
    "ModalNeed",
    "SimTask",
    "Snap",
    "TaskSpec",
    "TaskStore",
    "ms",
]

FAIL_REASON: Final = "[Invalid parameter] Invalid value for --ar"
CANCEL_REASON: Final = "取消任务"
BANNED_REASON: Final = "可能包含敏感词"
"""TA's failReason for a banned prompt it accepted (DiscordService.cs)."""

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
UNFINISHED: Final = frozenset({"NOT_START", "SUBMITTED", "IN_PROGRESS"})
_OWNER: ContextVar[str | None] = ContextVar("mj_mcp_simulator_owner", default=None)
"""With per-key tenancy, the key of the request being answered (None: no tenancy, or a keyless
path such as the served pictures, which go by their unguessable URLs as on a CDN)."""

Kind = Literal["grid", "upscale", "upscale_hd", "describe", "shorten", "video", "video_upscale", "edit", "swap"]
ModalNeed = Literal["zoom", "mask", "prompt"]


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
    size: tuple[int, int] = (LONG_SIDE, LONG_SIDE)
    final_prompt: str | None = None
    result_text: str | None = None
    source_url: str | None = None
    family: str = "7"
    mode: str | None = None
    """The speed mode the job was given (URL prefix, account selection or prompt), None: none."""
    selection: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    """The account selection the upstream applied (instanceId, modes, remix), from where its
    profile reads it; what it ignored is not here."""
    bot_type: str = "MID_JOURNEY"
    state: str | None = None
    notify_hook: str | None = None
    parent_id: str | None = None
    custom_id: str = ""
    extra: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    options: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    """The `mj_mcp.upstreams.EXTRA_FIELDS` its request carried (wire names), on any profile: what
    reached the upstream, whether or not it acts on them."""
    queued_at: float | None = None
    """When the job entered the queue; None while the task waits in MODAL."""
    queue_delay: float = 0.0
    fails: bool = False
    fail_reason: str = FAIL_REASON
    cancelled_at: float | None = None
    modal_need: ModalNeed | None = None
    notified: str | None = None
    """The "STATUS:progress" of the last callback sent for this task."""
    owner: str | None = None
    """With per-key tenancy, the key that submitted it: only requests with that key see it."""

    @property
    def effective_mode(self) -> str:
        """The mode the job runs in: the one it was given, else the account default."""
        return self.mode or DEFAULT_MODE


@dataclass(frozen=True, slots=True)
class Snap:
    """Where a task is at one moment."""

    status: str
    progress: str | None
    start_ms: int | None
    finish_ms: int | None
    fail_reason: str | None = None


@dataclass(slots=True, kw_only=True)
class TaskSpec:
    """What a handler asks the store to create; the rest of a `SimTask` follows from it."""

    action: str
    kind: Kind
    prompt: str | None
    description: str
    """`{id}` is replaced by the new task's id."""
    art_text: str
    art_key: str | None = None
    """None: derived from the prompt and the id (a new picture)."""
    job_hash: str | None = None
    selection: Mapping[str, Any] | None = None
    """The account selection as the upstream read it (its `modes` pick the speed mode)."""
    bot_type: str | None = None
    """None: NIJI_JOURNEY for a `--niji` prompt, else MID_JOURNEY."""
    queued: bool = True
    """False: the task waits in MODAL until it is confirmed."""
    state: str | None = None
    notify_hook: str | None = None
    parent_id: str | None = None
    custom_id: str = ""
    art_index: int | None = None
    modal_need: ModalNeed | None = None
    extra: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    options: dict[str, Any] = field(default_factory=lambda: dict[str, Any]())
    result_text: str | None = None
    source_url: str | None = None


class TaskStore:
    """Every task, their ids, and the clock-derived lifecycle."""

    def __init__(
        self, *, clock: Clock, job_seconds: float, quirks: Quirks, seed: int | None, profile: Profile = PLUS
    ) -> None:
        if job_seconds < 0:
            raise ValueError("job_seconds must not be negative")
        self.profile = profile
        self.clock = clock
        self.job_seconds = job_seconds
        self.quirks = quirks
        self.tasks: dict[str, SimTask] = {}
        self.rng = random.Random(seed)  # noqa: S311 - ids and hashes, not secrets
        self._seq = 0
        self.list_log: list[tuple[str | None, list[str]]] = []
        """(key, ids asked for) of every list-by-condition request, with per-key tenancy."""

    @contextmanager
    def serving(self, owner: str | None) -> Generator[None]:
        """Answer as the upstream answers the key `owner` (per-key tenancy) while the block runs."""
        token = _OWNER.set(owner)
        try:
            yield
        finally:
            _OWNER.reset(token)

    @staticmethod
    def owner() -> str | None:
        """The key of the request being answered, with per-key tenancy."""
        return _OWNER.get()

    def sees(self, task: SimTask) -> bool:
        owner = _OWNER.get()
        return owner is None or task.owner == owner

    def get(self, task_id: str) -> SimTask | None:
        """The task, if the request's key may see it (another key's task is not found, as upstream)."""
        task = self.tasks.get(task_id)
        return task if task is not None and self.sees(task) else None

    def visible(self) -> list[SimTask]:
        """The tasks the request's key may see (all of them without per-key tenancy)."""
        return [task for task in self.tasks.values() if self.sees(task)]

    def ordered(self) -> list[SimTask]:
        """Oldest first (those the request's key may see)."""
        return sorted(self.visible(), key=lambda t: (t.submit_ms, t.seq))

    def create(self, spec: TaskSpec, *, base: str, url_mode: str | None) -> SimTask:
        """Register a task (queued now, unless it waits in MODAL) and return it.

        `base` is the base URL of the request (every link of the task is built on it) and
        `url_mode` the speed mode of its URL prefix, which wins over `modes` and the prompt.
        """
        task_id = self._new_id()
        self._seq += 1
        text = spec.prompt or ""
        selection = dict(spec.selection or {})
        mode = url_mode or _first_mode(selection.get("modes")) or prompt_mode(text)
        bot_type = spec.bot_type
        if bot_type is None:
            bot_type = "NIJI_JOURNEY" if "--niji" in text else "MID_JOURNEY"
        task = SimTask(
            id=task_id,
            seq=self._seq,
            action=spec.action,
            kind=spec.kind,
            prompt=spec.prompt,
            description=spec.description.replace("{id}", task_id),
            submit_ms=ms(self.clock.now()),
            base=base,
            job_hash=spec.job_hash or self._new_hash(),
            art_key=spec.art_key if spec.art_key is not None else f"{text}/{task_id}",
            art_text=spec.art_text,
            art_index=spec.art_index,
            size=aspect_size(text),
            final_prompt=normalize_prompt(text, mode) if text else None,
            result_text=spec.result_text,
            source_url=spec.source_url,
            family=model_family(text),
            mode=mode,
            selection=selection,
            bot_type=bot_type,
            state=spec.state,
            notify_hook=spec.notify_hook,
            parent_id=spec.parent_id,
            custom_id=spec.custom_id,
            extra=spec.extra,
            options=spec.options,
            modal_need=spec.modal_need,
            owner=_OWNER.get(),
        )
        self.judge(task, text)
        if spec.queued:
            self.enqueue(task)
        self.tasks[task_id] = task
        return task

    def fails(self, prompt: str) -> bool:
        """Whether a job of this prompt fails after it started (`Quirks.failing_marker`)."""
        marker = self.quirks.failing_marker
        return bool(marker) and marker in prompt

    def banned_word(self, prompt: str) -> str | None:
        """The first of `Quirks.banned_words` in the prompt (case-insensitive), or None."""
        lowered = prompt.lower()
        return next((w for w in self.quirks.banned_words if w and w.lower() in lowered), None)

    def judge(self, task: SimTask, prompt: str) -> None:
        """Decide whether the job of this prompt fails after it started, and why: the failing
        marker, or a banned word where the upstream accepts it first (TA)."""
        task.fails, task.fail_reason = self.fails(prompt), FAIL_REASON
        if not task.fails and self.profile.banned_later and self.banned_word(prompt) is not None:
            task.fails, task.fail_reason = True, BANNED_REASON

    def enqueue(self, task: SimTask) -> None:
        task.queued_at = self.clock.now()
        task.queue_delay = max(0, self.quirks.queue_position) * _STARTED_AT * self.job_seconds

    def snapshot(self, task: SimTask, at: float | None = None) -> Snap:
        """Where the task is now (or was `at` then); all timing is derived here, from the clock."""
        now = self.clock.now() if at is None else at
        cancelled_at = task.cancelled_at if task.cancelled_at is not None and task.cancelled_at <= now else None
        if cancelled_at is not None:
            now = cancelled_at
        if task.queued_at is None or (task.modal_need is not None and now < task.queued_at):
            if cancelled_at is not None:
                return Snap("FAILURE", "", None, ms(cancelled_at), CANCEL_REASON)
            return Snap("MODAL", None, None, None)
        j = self.job_seconds
        t0 = task.queued_at + task.queue_delay
        elapsed = now - t0
        if task.fails and elapsed >= _FAIL_AT * j:
            return Snap("FAILURE", "", ms(t0 + _STARTED_AT * j), ms(t0 + _FAIL_AT * j), task.fail_reason)
        status, progress = "NOT_START", None
        for phase_at, phase_status, phase_progress in _PHASES:
            if elapsed < phase_at * j:
                break
            status, progress = phase_status, phase_progress
        start = ms(t0 + _STARTED_AT * j) if status != "NOT_START" else None
        if cancelled_at is not None:
            return Snap("FAILURE", "", start, ms(cancelled_at), CANCEL_REASON)
        finish = ms(t0 + j) if status == "SUCCESS" else None
        return Snap(status, progress, start, finish)

    def _new_id(self) -> str:
        millis = ms(self.clock.now())
        while True:
            for _ in range(50):
                candidate = f"{millis:013d}{self.rng.randrange(1000):03d}"
                if candidate not in self.tasks:
                    return candidate
            millis += 1

    def _new_hash(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _first_mode(modes: Any) -> str | None:
    """The first of an account selection's `modes` (a list of FAST/RELAX/TURBO), if any."""
    if isinstance(modes, list) and modes and isinstance(modes[0], str):
        return str(modes[0]).upper()  # pyright: ignore[reportUnknownArgumentType]
    return None


def ms(seconds: float) -> int:
    """Seconds as the upstream's Unix milliseconds."""
    return int(seconds * 1000)
