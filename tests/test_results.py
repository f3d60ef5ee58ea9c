"""results.py on its own: outcomes and reads rendered as plain data, word for word."""

from __future__ import annotations

from pathlib import Path

from mj_mcp.jobs import (
    Cancelled,
    JobOutcome,
    ModalLagging,
    ModalNeeded,
    ModalNotTaken,
    UpstreamUnreadable,
    WaitFailed,
)
from mj_mcp.media import Media, Preview
from mj_mcp.models import Button, Page, SubmitResult, Task
from mj_mcp.results import (
    Link,
    cancel_result,
    describe_status,
    error_result,
    page_result,
    render_outcome,
    seed_result,
    tasks_result,
    upload_result,
)

GRID_BUTTONS = [Button(custom_id=f"MJ::JOB::upsample::{i}::x", label=f"U{i}") for i in (1, 2)]


def grid(**fields: object) -> Task:
    values: dict[str, object] = {
        "id": "17",
        "action": "IMAGINE",
        "status": "SUCCESS",
        "progress": "100%",
        "prompt": "a fox",
        "imageUrl": "https://cdn.example/17.png",
        "buttons": [b.to_wire() for b in GRID_BUTTONS],
    }
    values.update(fields)
    return Task.model_validate(values)


def running() -> Task:
    return Task(id="18", action="IMAGINE", status="IN_PROGRESS", progress="40%", prompt="a fox")


def modal_task() -> Task:
    return Task(id="19", action="ZOOM", status="MODAL", prompt="a fox")


def test_describe_status_names_the_status() -> None:
    assert describe_status(Task(id="1", status="IN_PROGRESS", progress="42%")) == "IN_PROGRESS 42%"
    assert "queued" in describe_status(Task(id="1", status="NOT_START"))
    assert describe_status(Task(id="1", status="SUCCESS")) == "SUCCESS"
    assert describe_status(Task(id="1")).startswith("NOT_START")  # new-api's "" before it hears of the task
    assert describe_status(Task(id="1", status="")).startswith("NOT_START")


def test_a_finished_grid_shows_where_the_image_is_its_buttons_and_what_to_press() -> None:
    preview = Preview(b"png", "image/png")
    media = Media(preview=preview, saved=Path("/out/imagine-17.png"))
    rendered = render_outcome(JobOutcome("imagine", grid(), media=media))
    assert rendered.text.splitlines() == [
        "IMAGINE task 17: SUCCESS",
        "Prompt: a fox",
        "Image: https://cdn.example/17.png",
        "Saved: /out/imagine-17.png",
        "Buttons: U1, U2",
        "Next: action with taskId=\"17\" and customId='U1'..'U4' to upscale one image of the grid, 'V1'..'V4' "
        "for variations of one, or '🔄' to re-roll.",
    ]
    assert rendered.structured == {
        "id": "17",
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": "a fox",
        "imageUrl": "https://cdn.example/17.png",
        "savedFile": "/out/imagine-17.png",
        "buttons": [
            {"customId": "MJ::JOB::upsample::1::x", "label": "U1"},
            {"customId": "MJ::JOB::upsample::2::x", "label": "U2"},
        ],
    }
    assert rendered.preview is preview
    assert rendered.links == (Link("17", "IMAGINE SUCCESS"),)
    assert rendered.notes == ()
    assert not rendered.is_error


def test_a_running_task_says_how_to_keep_waiting_and_where_it_is_queued() -> None:
    timed_out = render_outcome(JobOutcome("imagine", running(), timed_out=True, queue_position=2))
    assert "Queued upstream behind 2 other job(s)." in timed_out.text
    assert timed_out.text.endswith(
        'Still running. Call get_task with taskId="18" and wait=true to keep waiting '
        "(the job goes on upstream either way)."
    )
    unfinished = render_outcome(JobOutcome("imagine", running()))
    assert unfinished.text.endswith('Not finished yet. Call get_task with taskId="18" and wait=true to wait for it.')


def test_each_modal_step_has_its_own_text() -> None:
    task = modal_task()
    needed = render_outcome(JobOutcome("action", task, next_step=ModalNeeded("MJ::CustomZoom::x")))
    assert needed.text.endswith(
        'This needs one more step: call modal with taskId="19" and a prompt that contains --zoom between 1 and 2, '
        'e.g. prompt="a fox --zoom 1.5".'
    )
    lagging = render_outcome(JobOutcome("modal", task, timed_out=True, next_step=ModalLagging()))
    assert "a reseller's copy can lag ~15 s" in lagging.text
    assert "Still running" not in lagging.text  # the step replaces the timeout's advice
    refused = render_outcome(JobOutcome("modal", task, next_step=ModalNotTaken(20.0)))
    assert "waiting for confirmation 20 s after this modal call, so it did not take it" in refused.text
    read = render_outcome(JobOutcome("get_task", task))
    assert "Waiting for confirmation. This needs one more step" in read.text


def test_an_unreadable_upstream_is_a_note_beside_the_timeout_advice() -> None:
    rendered = render_outcome(
        JobOutcome("imagine", running(), timed_out=True, next_step=UpstreamUnreadable("HTTP 503."))
    )
    assert not rendered.is_error
    assert "Still running." in rendered.text
    assert rendered.notes == ("(The upstream could not be read just now: HTTP 503.)",)


def test_a_failed_wait_after_the_submit_is_an_error_that_forbids_a_second_submit() -> None:
    stub = Task(id="20", action="IMAGINE", status="SUBMITTED")
    bare = render_outcome(JobOutcome("imagine", stub, next_step=WaitFailed("Refused.", "")))
    assert bare.is_error
    assert bare.text == (
        "imagine was submitted as task 20, but waiting for it failed: Refused. Do not submit it again. "
        "Then call get_task with taskId=20 and wait=true."
    )
    hinted = render_outcome(JobOutcome("imagine", stub, next_step=WaitFailed("Refused.", "Check MJ_API_KEY.")))
    assert "Do not submit it again. Check MJ_API_KEY. Then call get_task" in hinted.text
    assert hinted.structured == {"id": "20", "action": "IMAGINE", "status": "SUBMITTED"}
    assert hinted.links == (Link("20", "IMAGINE SUBMITTED"),)


def test_other_tasks_the_call_started_come_first_among_the_notes_and_are_linked() -> None:
    outcome = JobOutcome("action", running(), timed_out=True, siblings=("a", "b"), next_step=UpstreamUnreadable("x"))
    rendered = render_outcome(outcome)
    assert rendered.notes[0] == (
        "This call also started 2 more task(s): a, b. Follow them with get_task (wait=true) or list_tasks with "
        'ids=["a", "b"].'
    )
    assert rendered.notes[1].startswith("(The upstream could not be read")
    assert [link.task_id for link in rendered.links] == ["18", "a", "b"]


def test_a_failed_task_is_an_error_saying_what_to_change() -> None:
    failed = grid(status="FAILURE", failReason="Invalid parameter --ar", buttons=[])
    rendered = render_outcome(JobOutcome("imagine", failed))
    assert rendered.is_error
    assert rendered.text.splitlines()[-2:] == [
        "Failed: Invalid parameter --ar",
        "Next: fix the prompt's parameters (--ar, --v, --stylize ...) and call imagine again.",
    ]


def test_media_notes_follow_the_locations() -> None:
    media = Media(notes=["(The image could not be shown: too large)"])
    rendered = render_outcome(JobOutcome("imagine", grid(), media=media))
    assert "Image: https://cdn.example/17.png\n(The image could not be shown: too large)" in rendered.text


def test_error_results_without_a_task_carry_nothing_else() -> None:
    rendered = error_result("Nope.")
    assert (rendered.text, rendered.structured, rendered.links, rendered.is_error) == ("Nope.", None, (), True)


def test_reads_render_as_a_summary_plus_the_data() -> None:
    listed = tasks_result([running()], missing=["x"])
    assert listed.text.splitlines() == [
        "1 task(s).",
        '- 18 IN_PROGRESS 40% IMAGINE "a fox"',
        "Not found: x",
        "Next: get_task with a taskId for the full task, its buttons and its image.",
    ]
    assert listed.structured == {
        "tasks": [{"id": "18", "action": "IMAGINE", "status": "IN_PROGRESS", "progress": "40%", "prompt": "a fox"}],
        "missing": ["x"],
    }
    page = Page(content=[running()], total_elements=3, total_pages=3, number=0, number_of_elements=1, last=False)
    assert page_result(page).text.endswith("Next: query_tasks with pageNumber=1 for more.")
    assert seed_result("17", "123").structured == {"taskId": "17", "seed": "123"}
    assert upload_result(["https://u/1.png"]).text.endswith("\nhttps://u/1.png")


def test_a_cancel_says_where_the_task_stands() -> None:
    cancelled = Task(id="18", action="IMAGINE", status="FAILURE", fail_reason="Cancelled")
    reply = SubmitResult(code=1, description="ok")
    rendered = cancel_result(Cancelled("18", reply, cancelled))
    assert rendered.text == "Cancelled task 18: it is now FAILURE (Cancelled)."
    assert not rendered.is_error
    assert rendered.structured == {
        "taskId": "18",
        "cancelRequested": True,
        "task": {"id": "18", "action": "IMAGINE", "status": "FAILURE", "failReason": "Cancelled"},
    }
    gone = cancel_result(Cancelled("18", None, None))
    assert gone.text.startswith("Cancel sent for task 18; it could not be read since.")
    assert gone.links == ()
    still = cancel_result(Cancelled("18", reply, running()))
    assert "still shows it IN_PROGRESS" in still.text and not still.is_error


def test_a_cancel_of_an_ended_task_is_an_error_naming_its_status() -> None:
    done = Task(id="18", action="IMAGINE", status="SUCCESS")
    rendered = cancel_result(Cancelled("18", None, done, sent=False))
    assert rendered.is_error
    assert "already ended as SUCCESS: there was nothing to cancel" in rendered.text
    assert rendered.structured is not None and rendered.structured["status"] == "SUCCESS"
