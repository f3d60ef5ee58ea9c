"""The paged task query (`POST /mj/task/query`, PLUS only): its request model and filter values.

Kept apart from mj_mcp.models (the job DTOs) because only the query tool, its resource and the
simulator's query route read it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mj_mcp.models import WireModel

__all__ = ["QueryAction", "QueryRequest", "QueryStatus"]

QueryAction = Literal[
    "IMAGINE", "UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN", "DESCRIBE", "BLEND", "SHORTEN", "SWAP_FACE",
    "VIDEO", "EDIT",
]  # fmt: skip
QueryStatus = Literal["NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "FAILURE", "SUCCESS", "CANCEL"]
"""The `Status` names, in its order (tests hold the two equal). A Literal rather than the enum, so
that the query's schema and its validation errors list plain strings."""


class QueryRequest(WireModel):
    """The paged query: `POST /mj/task/query` (Spring Data page)."""

    page_number: int = Field(default=0, ge=0, description="0-based.")
    page_size: int = Field(default=10, ge=1, le=100, description="Tasks per page.")
    sort: str | None = Field(
        default="submitTime,desc", pattern=r"^[A-Za-z]+,(asc|desc)$", description="Field,asc|desc."
    )
    id: str | None = Field(default=None, description="Filter: task id.")
    ids: list[str] | None = Field(default=None, description="Filter: task ids.")
    action: QueryAction | None = Field(default=None, description="Filter: action.")
    status: QueryStatus | None = Field(default=None, description="Filter: status.")
    status_set: list[QueryStatus] | None = Field(default=None, description="Filter: any of these statuses.")
    instance_id: str | None = Field(default=None, description="Filter: account instance.")
    prompt: str | None = Field(default=None, description="Filter: prompt contains.")
    prompt_en: str | None = Field(default=None, description="Filter: English prompt contains.")
    description: str | None = Field(default=None, description="Filter: description contains.")
    fail_reason: str | None = Field(default=None, description="Filter: failReason contains.")
    state: str | None = Field(default=None, description="Filter: state equals.")
