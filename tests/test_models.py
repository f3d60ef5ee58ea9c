"""Wire models: the seeds' payloads parse, replies are read leniently, requests serialise to wire names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import (
    ActionRequest,
    BlendRequest,
    ImagineRequest,
    Page,
    SubmitResult,
    SwapFaceRequest,
    Task,
    task_order,
)
from mj_mcp.querymodels import QueryRequest

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"
"""Copies of the seed API documents (tests/fixtures/seeds) whose examples the models must parse."""

# The seeds' request examples, verbatim (openai-hk / PLUS swagger dumps).
SEED_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "action",
        {
            "customId": "MJ::JOB::upsample::2::3dbbd469-36af-4a0f-8f02-df6c579e7011",
            "notifyHook": "",
            "state": "",
            "taskId": "14001934816969359",
        },
    ),
    (
        "blend",
        {
            "base64Array": ["data:image/png;base64,xxx1", "data:image/png;base64,xxx2"],
            "dimensions": "SQUARE",
            "instanceId": "",
            "modes": [],
            "notifyHook": "",
            "remix": True,
            "state": "",
        },
    ),
    (
        "describe",
        {"base64": "data:image/png;base64,xxx", "instanceId": "", "modes": [], "notifyHook": "", "remix": True},
    ),
    (
        "imagine",
        {
            "base64Array": [],
            "instanceId": "",
            "modes": [],
            "notifyHook": "",
            "prompt": "Cat",
            "remix": True,
            "state": "",
        },
    ),
    ("modal", {"maskBase64": "", "prompt": "", "taskId": "14001934816969359"}),
    (
        "swap_face",
        {
            "sourceBase64": "data:image/png;base64,xxx1",
            "targetBase64": "data:image/png;base64,xxx2",
            "accountFilter": {"instanceId": ""},
            "notifyHook": "",
            "state": "",
        },
    ),
    ("shorten", {"instanceId": "", "modes": [], "notifyHook": "", "prompt": "Cat", "remix": True, "state": ""}),
    ("video", {"prompt": "飞来一只蜜蜂", "motion": "low", "image": "https://cdn.example/x.jpg", "state": "9"}),
    (
        "edit",
        {"prompt": "改为白色背景", "image": "https://cdn.example/x.jpg", "notifyHook": "https://h/", "state": "abc"},
    ),
    ("list_tasks", {"ids": ["1231234123", "456456456"]}),
    ("query_tasks", {"pageNumber": 0, "pageSize": 10, "sort": "id,desc", "status": "SUCCESS"}),
    ("change", {"taskId": "1320098173412546", "action": "UPSCALE", "index": 2}),
    ("simple_change", {"content": "1320098173412546 U2"}),
    ("show", {"jobId": "3dbbd469-36af-4a0f-8f02-df6c579e7011"}),
    ("upload_images", {"base64Array": ["data:image/png;base64,xxx1"]}),
]


@pytest.mark.parametrize(("endpoint", "body"), SEED_REQUESTS, ids=[e for e, _ in SEED_REQUESTS])
def test_the_seeds_request_examples_parse_and_serialise_to_the_same_wire_names(
    endpoint: str, body: dict[str, Any]
) -> None:
    model = ENDPOINTS[endpoint].request.model_validate(body)
    wire = model.to_wire()
    assert set(wire) <= set(body)
    for key, value in wire.items():
        if isinstance(value, str):
            assert value == str(body[key]).strip()


def test_requests_serialise_camel_case_and_leave_out_unset_fields() -> None:
    req = ImagineRequest(prompt="a cat", base64_array=["data:image/png;base64,AAAA"], notify_hook="https://x/")
    assert req.to_wire() == {
        "prompt": "a cat",
        "base64Array": ["data:image/png;base64,AAAA"],
        "notifyHook": "https://x/",
    }


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ImagineRequest, {"prompt": ""}),
        (ImagineRequest, {}),
        (BlendRequest, {"base64Array": ["only-one"]}),
        (BlendRequest, {"base64Array": ["a", "b"], "dimensions": "WIDE"}),
        (ActionRequest, {"taskId": "1"}),
        (SwapFaceRequest, {"sourceBase64": "a"}),
        (QueryRequest, {"pageNumber": -1}),
        (QueryRequest, {"sort": "id; drop"}),
        (ImagineRequest, {"prompt": "x", "unknownField": 1}),
    ],
)
def test_invalid_requests_are_rejected_by_the_models(model: type[Any], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("1748339029401828", "1748339029401828"),
        (1320098173412546, "1320098173412546"),
        (1320098173412546.0, "1320098173412546"),
        (None, None),
        ("1,2,3", "1"),
        (["https://a/1.png", "https://a/2.png"], "https://a/1.png"),
    ],
)
def test_submit_result_normalises_every_shape_of_result_to_string_ids(result: Any, expected: str | None) -> None:
    parsed = SubmitResult.model_validate({"code": 1, "description": None, "result": result, "properties": None})
    assert parsed.task_id == expected
    assert parsed.properties == {}
    assert parsed.description == ""


def test_submit_result_lists_every_id_of_a_comma_joined_result() -> None:
    assert SubmitResult(code=1, result="1, 2,3").task_ids == ["1", "2", "3"]
    assert SubmitResult(code=1, result=None).task_ids == []
    assert SubmitResult(code=1, result=["a"]).task_ids == ["a"]


def test_queue_position_comes_from_number_of_queues() -> None:
    assert SubmitResult(code=22, properties={"numberOfQueues": 3}).queue_position == 3
    assert SubmitResult(code=22, properties={"numberOfQueues": True}).queue_position is None
    assert SubmitResult(code=1).queue_position is None


def _seed_json_blocks() -> list[Any]:
    text = (SEEDS / "000_3575dba09de1f859.txt").read_text(encoding="utf-8")
    blocks: list[Any] = []
    decoder = json.JSONDecoder()
    i = 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        blocks.append(obj)
        i = end
    return blocks


def test_the_seeds_task_examples_parse_with_unknown_fields_kept() -> None:
    tasks = [b for b in _seed_json_blocks() if isinstance(b, dict) and "status" in b and "id" in b]
    assert len(tasks) >= 4
    for raw in tasks:
        task = Task.model_validate(raw)
        assert task.id == str(raw["id"])
        wire = task.to_wire()
        for key in raw:
            assert key in wire
    video = Task.model_validate(next(t for t in tasks if t.get("action") == "VIDEO"))
    assert video.video_urls is not None
    assert len(video.video_urls) == 4
    assert video.percent == 100
    assert video.finished


def test_the_seeds_list_example_with_grid_buttons_parses() -> None:
    text = (SEEDS / "001_763f1fd387c2656c.txt").read_text(encoding="utf-8")
    start = text.index('{\n"id": "1730621826053455"')
    raw, _ = json.JSONDecoder().raw_decode(text, start)
    task = Task.model_validate(raw)
    assert [b.display for b in task.buttons] == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    u2 = task.button("u2")
    assert u2 is not None
    assert u2.custom_id == "MJ::JOB::upsample::2::3785da15-4f70-4034-9128-f3ff1ac634fa"
    assert task.button("🔄") is not None
    assert task.button("\U0001f504\ufe0f") is not None
    assert task.button("U9") is None


def test_the_seeds_empty_example_task_parses() -> None:
    example = {
        "action": "",
        "buttons": [{"customId": "", "emoji": "", "label": "", "style": 0, "type": 0}],
        "description": "",
        "failReason": "",
        "finishTime": 0,
        "id": "",
        "imageUrl": "",
        "progress": "",
        "prompt": "",
        "promptEn": "",
        "properties": {},
        "startTime": 0,
        "state": "",
        "status": "",
        "submitTime": 0,
    }
    task = Task.model_validate(example)
    assert task.percent == 0
    assert not task.finished


def test_the_seeds_page_example_parses() -> None:
    page = Page.model_validate(
        {
            "content": [{"action": "IMAGINE", "id": "string", "status": "NOT_START", "buttons": []}],
            "empty": True,
            "first": True,
            "last": True,
            "number": 0,
            "numberOfElements": 0,
            "pageable": {"offset": 0, "pageNumber": 0, "pageSize": 0, "paged": True, "unpaged": True},
            "size": 0,
            "sort": {"empty": True, "sorted": True, "unsorted": True},
            "totalElements": 0,
            "totalPages": 0,
        }
    )
    assert page.content[0].status == "NOT_START"
    assert "pageable" in page.to_wire()


@pytest.mark.parametrize(
    ("progress", "status", "percent"),
    [
        ("31%", "IN_PROGRESS", 31),
        ("0%", "SUBMITTED", 0),
        ("", "FAILURE", 0),
        (None, "NOT_START", 0),
        ("Waiting to start", "IN_PROGRESS", 0),
        ("250%", "IN_PROGRESS", 100),
        ("12.5%", "IN_PROGRESS", 12),
        (47, "IN_PROGRESS", 47),
        ("", "SUCCESS", 100),
    ],
)
def test_progress_text_becomes_a_whole_percentage(progress: Any, status: str, percent: int) -> None:
    assert Task.model_validate({"id": "1", "status": status, "progress": progress}).percent == percent


def test_task_ids_and_times_are_normalised() -> None:
    task = Task.model_validate(
        {"id": 1748339029401828, "submitTime": "1748339029401", "startTime": 1.5e12, "finishTime": "n/a"}
    )
    assert task.id == "1748339029401828"
    assert task.submit_time == 1748339029401
    assert task.start_time == 1_500_000_000_000
    assert task.finish_time is None


def test_task_order_only_moves_forward_through_the_lifecycle() -> None:
    def t(status: str, progress: str = "") -> Task:
        return Task(id="1", status=status, progress=progress)

    sequence = [t("NOT_START"), t("SUBMITTED", "0%"), t("IN_PROGRESS", "10%"), t("IN_PROGRESS", "55%"), t("SUCCESS")]
    orders = [task_order(x) for x in sequence]
    assert orders == sorted(orders)
    assert len(set(orders)) == len(orders)
    assert task_order(t("FAILURE")) > task_order(t("IN_PROGRESS", "99%"))


def test_an_unknown_status_ranks_after_a_submit_and_before_any_progress() -> None:
    running = Task(id="1", status="RUNNING_SOMEWHERE")
    assert task_order(Task(id="1", status="SUBMITTED")) < task_order(running)
    assert task_order(running) < task_order(Task(id="1", status="IN_PROGRESS", progress="0%"))


def test_the_query_status_filter_takes_exactly_the_status_names() -> None:
    from typing import get_args

    from mj_mcp.models import Status
    from mj_mcp.querymodels import QueryStatus

    assert get_args(QueryStatus) == tuple(Status)


def test_nulls_read_as_empty_values_and_stay_out_of_the_wire_form() -> None:
    from mj_mcp.models import Button

    task = Task.model_validate({"id": 7, "properties": None, "buttons": None})
    assert (task.properties, task.buttons) == ({}, [])
    button = Button.model_validate({"customId": None, "label": None, "style": None, "type": None})
    assert (button.custom_id, button.label, button.style, button.type) == ("", "", 2, 2)
    assert SubmitResult.model_validate({"code": 1, "description": None, "properties": None}).description == ""
    assert Page.model_validate({"content": None}).content == []
    assert ImagineRequest(prompt="cat", state=None).to_wire() == {"prompt": "cat"}
    assert Task.model_validate({"id": "1", "status": "SUCCESS"}).to_wire() == {"id": "1", "status": "SUCCESS"}
