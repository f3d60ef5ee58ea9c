"""The job service against the simulator, with no MCP session: prepare, submit, wait, media."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from PIL import Image

from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import ButtonNotFoundError, GuardrailError, MjError, TaskNotFoundError
from mj_mcp.jobs import (
    MODAL_GRACE,
    JobOutcome,
    Jobs,
    ModalNeeded,
    ModalNotTaken,
    Progress,
    UpstreamUnreadable,
    WaitFailed,
)
from mj_mcp.loading import ImageLoader
from mj_mcp.models import (
    ActionRequest,
    DescribeRequest,
    ImagineRequest,
    ModalRequest,
    Status,
    Task,
    UploadRequest,
)
from mj_mcp.saving import ImageSaver
from mj_mcp.simulator import Fault, Simulator
from mj_mcp.waiting import TaskWatcher
from tests.helpers import FakeClock

pytestmark = pytest.mark.anyio


def png_data_uri(color: str = "red") -> str:
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
async def watcher(mj: MjClient, clock: FakeClock) -> AsyncIterator[TaskWatcher]:
    w = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run)
        yield w
        tg.cancel_scope.cancel()


@pytest.fixture
async def loader(tmp_path: Path) -> AsyncIterator[ImageLoader]:
    async with ImageLoader([tmp_path]) as images:
        yield images


def make_jobs(
    mj: MjClient,
    watcher: TaskWatcher,
    loader: ImageLoader,
    out: Path,
    *,
    max_jobs: int | None = None,
    callbacks: CallbackReceiver | None = None,
) -> Jobs:
    saver, audit = ImageSaver(out), AuditLog(out)
    return Jobs(
        mj, watcher, loader, saver=saver, audit=audit, max_jobs=max_jobs, wait_timeout=600.0, callbacks=callbacks
    )


@pytest.fixture
def jobs(mj: MjClient, watcher: TaskWatcher, loader: ImageLoader, tmp_path: Path) -> Jobs:
    return make_jobs(mj, watcher, loader, tmp_path / "out")


async def imagine(
    jobs: Jobs, *, wait: bool = True, timeout: float | None = None, on_progress: Progress | None = None
) -> JobOutcome:
    with anyio.fail_after(30):
        request = ImagineRequest(prompt="a red fox")
        return await jobs.run(ENDPOINTS["imagine"], request, wait=wait, timeout=timeout, on_progress=on_progress)


async def press(jobs: Jobs, task_id: str, button: str) -> JobOutcome:
    with anyio.fail_after(30):
        return await jobs.run(ENDPOINTS["action"], ActionRequest(task_id=task_id, custom_id=button))


# -- submit and wait -----------------------------------------------------------------------------


async def test_a_job_is_waited_for_with_progress_and_its_image_previewed_and_saved(jobs: Jobs, tmp_path: Path) -> None:
    seen: list[Task] = []

    async def progress(task: Task) -> None:
        seen.append(task)

    outcome = await imagine(jobs, on_progress=progress)
    assert outcome.task.status == Status.SUCCESS
    assert outcome.tool == "imagine"
    assert not outcome.timed_out and outcome.next_step is None and outcome.siblings == ()
    assert seen and seen[-1].status == Status.SUCCESS
    assert [t.percent for t in seen] == sorted(t.percent for t in seen)
    assert outcome.media is not None and outcome.media.preview is not None
    assert outcome.media.saved is not None and outcome.media.saved.is_file()
    assert len(outcome.media.quadrants) == 4  # a grid is saved as its four pictures too
    (line,) = (tmp_path / "out" / "audit.jsonl").read_text().splitlines()
    assert json.loads(line)["taskId"] == outcome.task.id


async def test_a_finished_tasks_picture_is_fetched_once_and_given_again_to_later_reads(
    jobs: Jobs, sim: Simulator
) -> None:
    first = await imagine(jobs)
    downloads = sum(1 for _, path in sim.request_log if path.startswith("/sim/images/"))
    again = await jobs.get(ENDPOINTS["get_task"], first.task.id)
    assert again.media is not None and first.media is not None
    assert again.media.preview == first.media.preview
    assert again.media.saved == first.media.saved
    assert sum(1 for _, path in sim.request_log if path.startswith("/sim/images/")) == downloads
    assert first.media.saved is not None
    first.media.saved.unlink()  # the user deleted the file: the next read saves it again
    third = await jobs.get(ENDPOINTS["get_task"], first.task.id)
    assert third.media is not None and third.media.saved is not None and third.media.saved.is_file()
    assert sum(1 for _, path in sim.request_log if path.startswith("/sim/images/")) == downloads + 1


async def test_without_waiting_the_task_comes_back_at_once_with_its_queue_position(
    mj: MjClient, watcher: TaskWatcher, loader: ImageLoader, tmp_path: Path, sim: Simulator
) -> None:
    sim.quirks.queue_position = 3
    jobs = make_jobs(mj, watcher, loader, tmp_path)
    outcome = await imagine(jobs, wait=False)
    assert not outcome.task.finished
    assert outcome.queue_position == 3
    assert outcome.media is None


async def test_the_job_limit_refuses_a_job_before_it_is_sent(
    mj: MjClient, watcher: TaskWatcher, loader: ImageLoader, tmp_path: Path, sim: Simulator
) -> None:
    jobs = make_jobs(mj, watcher, loader, tmp_path, max_jobs=1)
    await imagine(jobs, wait=False)
    with pytest.raises(GuardrailError, match="MJ_MAX_JOBS"):
        await imagine(jobs, wait=False)
    assert sum("/submit/" in path for _, path in sim.request_log) == 1
    assert jobs.started == 1


async def test_uploads_count_as_jobs_and_answer_with_urls(jobs: Jobs) -> None:
    urls = await jobs.upload(ENDPOINTS["upload_images"], UploadRequest(base64_array=[png_data_uri()]))
    assert len(urls) == 1 and urls[0].startswith("http")
    assert jobs.started == 1


async def test_a_callback_receiver_puts_its_hook_on_the_job_and_expects_the_task(
    mj: MjClient, watcher: TaskWatcher, loader: ImageLoader, tmp_path: Path, sim: Simulator
) -> None:
    receiver = CallbackReceiver("https://mcp.example.com")
    jobs = make_jobs(mj, watcher, loader, tmp_path, callbacks=receiver)
    outcome = await imagine(jobs, wait=False)
    assert sim.tasks[outcome.task.id].notify_hook == receiver.hook_url
    assert receiver.expects(outcome.task.id)


# -- buttons and MODAL ---------------------------------------------------------------------------


async def test_a_button_label_is_pressed_by_its_custom_id(jobs: Jobs) -> None:
    grid = await imagine(jobs)
    upscale = await press(jobs, grid.task.id, "U2")
    assert upscale.task.status == Status.SUCCESS
    assert upscale.task.action == "UPSCALE"


async def test_an_unknown_label_names_the_buttons_there_are(jobs: Jobs) -> None:
    grid = await imagine(jobs)
    with pytest.raises(ButtonNotFoundError) as info:
        await press(jobs, grid.task.id, "U9")
    assert "U1" in info.value.available


async def test_a_job_that_needs_one_more_input_says_which_button_led_there(jobs: Jobs) -> None:
    grid = await imagine(jobs)
    upscale = await press(jobs, grid.task.id, "U1")
    modal = await press(jobs, upscale.task.id, "Custom Zoom")
    assert modal.task.status == Status.MODAL
    assert isinstance(modal.next_step, ModalNeeded)
    assert "CustomZoom" in modal.next_step.custom_id


async def test_a_modal_the_upstream_never_takes_is_reported_after_the_grace(
    jobs: Jobs, sim: Simulator, clock: FakeClock
) -> None:
    grid = await imagine(jobs)
    upscale = await press(jobs, grid.task.id, "U1")
    modal = await press(jobs, upscale.task.id, "Custom Zoom")
    stuck = {**modal.task.to_wire(), "status": "MODAL", "progress": "0%"}
    sim.inject(
        Fault(kind="status", status=200, body=json.dumps([stuck]), path="/list-by-condition", times=None),
        Fault(kind="status", status=200, body=json.dumps(stuck), path="/fetch", times=None),
    )
    started = clock.now()
    with anyio.fail_after(30):
        outcome = await jobs.run(ENDPOINTS["modal"], ModalRequest(task_id=modal.task.id, prompt="fox --zoom 2"))
    assert outcome.next_step == ModalNotTaken(MODAL_GRACE)
    assert clock.now() - started >= MODAL_GRACE


async def test_imagine_all_reports_the_other_tasks_it_started(jobs: Jobs, tmp_path: Path) -> None:
    with anyio.fail_after(30):
        described = await jobs.run(ENDPOINTS["describe"], DescribeRequest(base64=png_data_uri()))
    everything = await press(jobs, described.task.id, "Imagine all")
    assert len(everything.siblings) == 3
    assert everything.task.id not in everything.siblings


# -- when reading the task fails -----------------------------------------------------------------


async def test_an_upstream_that_cannot_be_read_while_waiting_ends_the_wait_like_a_timeout(
    jobs: Jobs, sim: Simulator
) -> None:
    sim.inject(
        Fault(status=503, path="/list-by-condition", times=None),
        Fault(status=503, path="/fetch", times=None),
    )
    outcome = await imagine(jobs, timeout=3)
    assert outcome.timed_out
    assert isinstance(outcome.next_step, UpstreamUnreadable)
    assert outcome.task.status == Status.SUBMITTED  # what the submit said; nothing newer was read


async def test_a_wait_that_fails_for_good_after_the_submit_says_not_to_submit_again(jobs: Jobs, sim: Simulator) -> None:
    sim.inject(
        Fault(status=401, path="/list-by-condition", times=None, body="Invalid token"),
        Fault(status=401, path="/fetch", times=None, body="Invalid token"),
    )
    outcome = await imagine(jobs)
    assert isinstance(outcome.next_step, WaitFailed)
    assert outcome.task.status == Status.SUBMITTED


async def test_get_waits_for_a_running_task_and_raises_for_a_missing_one(jobs: Jobs) -> None:
    running = await imagine(jobs, wait=False)
    get = ENDPOINTS["get_task"]
    with anyio.fail_after(30):
        done = await jobs.get(get, running.task.id, wait=True)
    assert done.task.status == Status.SUCCESS and done.tool == "get_task"
    assert done.media is not None and done.media.preview is not None
    with pytest.raises(TaskNotFoundError):
        await jobs.get(get, "nope", wait=True)


async def test_cancel_reads_the_task_afterwards(jobs: Jobs) -> None:
    running = await imagine(jobs, wait=False)
    cancelled = await jobs.cancel(running.task.id)
    assert cancelled.task is not None
    assert cancelled.task.status in (Status.CANCEL, Status.FAILURE)


PLUS_BAD_STATUS = json.dumps({"code": 4, "description": "关联任务状态错误", "result": None, "properties": {}})


async def test_a_cancel_refused_because_the_task_ended_meanwhile_is_nothing_to_cancel(
    jobs: Jobs, sim: Simulator
) -> None:
    done = await imagine(jobs)
    # The read before the cancel still shows it running; then PLUS refuses the cancel of an ended task.
    shown = {**done.task.to_wire(), "status": "IN_PROGRESS", "progress": "90%"}
    sim.inject(Fault(path=f"/{done.task.id}/fetch", status=200, body=json.dumps(shown)))
    sim.inject(Fault(path="/cancel", status=200, body=PLUS_BAD_STATUS))
    cancelled = await jobs.cancel(done.task.id)
    assert not cancelled.sent
    assert cancelled.task is not None and cancelled.task.status == Status.SUCCESS


async def test_a_cancel_refused_while_the_task_runs_is_an_error_in_english(jobs: Jobs, sim: Simulator) -> None:
    running = await imagine(jobs, wait=False)
    sim.inject(Fault(path="/cancel", status=200, body=PLUS_BAD_STATUS))
    with pytest.raises(MjError, match=r"it must be SUCCESS\) \(关联任务状态错误\)"):
        await jobs.cancel(running.task.id)


async def test_a_cancel_of_an_unknown_task_is_not_found(jobs: Jobs, sim: Simulator) -> None:
    before = len(sim.request_log)
    with pytest.raises(TaskNotFoundError, match="nothing was cancelled"):
        await jobs.cancel("1750000000009999")
    assert not [p for _, p in sim.request_log[before:] if p.endswith("/cancel")]


# -- preparing -----------------------------------------------------------------------------------


async def test_empty_image_fields_are_dropped_and_a_mask_is_sent_as_png(jobs: Jobs) -> None:
    empty = await jobs.prepare(ModalRequest(task_id="1", prompt="x", mask_base64=""))
    assert empty.mask_base64 is None
    jpeg = io.BytesIO()
    Image.new("L", (32, 32), 255).save(jpeg, "JPEG")
    mask = "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode()
    prepared = await jobs.prepare(ModalRequest(task_id="1", prompt="x", mask_base64=mask))
    assert prepared.mask_base64 is not None and prepared.mask_base64.startswith("data:image/png;base64,")


async def test_a_notify_hook_into_this_network_is_refused(jobs: Jobs) -> None:
    with pytest.raises(MjError, match="notifyHook"):
        await jobs.prepare(ImagineRequest(prompt="x", notify_hook="http://127.0.0.1:8080/hook"))


@pytest.mark.slow  # a fresh interpreter; tests/test_layers.py checks the same from the source, quickly
def test_the_service_and_its_rendering_import_no_mcp() -> None:
    import subprocess
    import sys

    code = "import sys, mj_mcp.jobs, mj_mcp.results; sys.exit(any(m.split('.')[0] == 'mcp' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- repeats after a client gave up ---------------------------------------------------------------


async def test_a_call_repeated_after_its_client_gave_up_joins_the_job_instead_of_paying_again(
    jobs: Jobs, sim: Simulator
) -> None:
    with anyio.CancelScope() as gave_up:

        async def give_up(task: Task) -> None:
            if task.status == Status.IN_PROGRESS:
                gave_up.cancel()  # the client's own timeout: it gives up while the job runs on

        await imagine(jobs, on_progress=give_up)
    assert gave_up.cancelled_caught
    retried = await imagine(jobs)
    assert retried.joined
    assert retried.task.status == Status.SUCCESS
    assert sum(1 for _, path in sim.request_log if path.endswith("/submit/imagine")) == 1
    again = await imagine(jobs)  # the first call was answered now: a repeat is a new job
    assert not again.joined
    assert again.task.id != retried.task.id
    assert sum(1 for _, path in sim.request_log if path.endswith("/submit/imagine")) == 2


async def test_the_same_arguments_called_while_the_first_call_still_waits_join_it(jobs: Jobs, sim: Simulator) -> None:
    outcomes: list[JobOutcome] = []

    async with anyio.create_task_group() as tg:

        async def second() -> None:
            outcomes.append(await imagine(jobs))

        async def first_progress(task: Task) -> None:
            if task.status == Status.IN_PROGRESS and not started:
                started.append(task.id)
                tg.start_soon(second)  # the agent calls again while the first call still waits

        started: list[str] = []
        outcomes.append(await imagine(jobs, on_progress=first_progress))
    assert started
    assert {o.task.id for o in outcomes} == {started[0]}
    assert sorted(o.joined for o in outcomes) == [False, True]
    assert sum(1 for _, path in sim.request_log if path.endswith("/submit/imagine")) == 1
