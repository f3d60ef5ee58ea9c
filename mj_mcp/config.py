"""Settings: every `MJ_*` variable, its CLI flag and its default, named once.

`Settings()` reads the environment; the CLI passes flags as keyword arguments, which win over
the environment. `load_settings` turns pydantic's validation errors into one `SettingsError`
line that names the variable and says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mj_mcp.errors import SettingsError, validation_problems
from mj_mcp.images import DEFAULT_MAX_IMAGE_BYTES
from mj_mcp.models import AuthHeader, Mode, ModePrefix

DEFAULT_POLL_INTERVAL: Final = 2.0
DEFAULT_WAIT_TIMEOUT: Final = 300.0
DEFAULT_HTTP_TIMEOUT: Final = 30.0
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DEFAULT_SIMULATOR_PORT: Final = 8080
DEFAULT_SIM_JOB_SECONDS: Final = 8.0
"""How long a simulated job takes (about like a fast-mode Midjourney job, only shorter)."""
HEARTBEAT_SECONDS: Final = 5.0
"""Progress heartbeat while nothing changes: well under the 10 s the interface promises."""

Transport = Literal["stdio", "streamable-http", "sse"]


def default_output_dir() -> Path:
    """A per-user pictures folder: $XDG_PICTURES_DIR or ~/Pictures, then `mj-mcp`."""
    pictures = os.environ.get("XDG_PICTURES_DIR")
    base = Path(pictures).expanduser() if pictures else Path.home() / "Pictures"
    return base / "mj-mcp"


class Settings(BaseSettings):
    """Everything the server can be configured with. Environment variables use the MJ_ prefix."""

    model_config = SettingsConfigDict(
        env_prefix="MJ_",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    base_url: str | None = Field(default=None, description="Upstream root URL.")
    api_key: SecretStr | None = Field(default=None, description="Upstream key.")
    auth_header: AuthHeader = "bearer"
    mode: Literal["", Mode] = ""
    mode_prefix: ModePrefix = "/{mode}"
    output_dir: Annotated[Path | None, NoDecode] = Field(default_factory=default_output_dir)
    poll_interval: float = Field(default=DEFAULT_POLL_INTERVAL, gt=0, le=60)
    wait_timeout: float = Field(default=DEFAULT_WAIT_TIMEOUT, gt=0, le=86_400)
    http_timeout: float = Field(default=DEFAULT_HTTP_TIMEOUT, gt=0, le=600)
    allowed_dirs: Annotated[list[Path] | None, NoDecode] = None
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, gt=0, le=100 * 1024 * 1024)
    mcp_token: SecretStr | None = None
    public_url: str | None = None
    read_only: bool = False
    max_jobs: int | None = Field(default=None, ge=0)
    simulator: bool = False
    sim_job_seconds: float = Field(default=DEFAULT_SIM_JOB_SECONDS, gt=0, le=3600)
    transport: Transport = "stdio"
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    stateless: bool = False
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("base_url", "public_url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.openai-hk.com")
        return value.rstrip("/")

    @field_validator("api_key", "mcp_token", mode="after")
    @classmethod
    def _blank_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("auth_header", mode="before")
    @classmethod
    def _header_lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() in ("off", "none", "false", "0", "no"):
                return None
            if not value.strip():
                return default_output_dir()
            return Path(value.strip()).expanduser()
        return value

    @field_validator("max_jobs", mode="before")
    @classmethod
    def _max_jobs(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "unlimited", "none"):
            return None
        return value

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _needs_upstream(self) -> Settings:
        if self.simulator:
            return self
        missing = [name for name, v in (("MJ_BASE_URL", self.base_url), ("MJ_API_KEY", self.api_key)) if not v]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Set "
                f"{' and '.join(missing)} (e.g. MJ_BASE_URL=https://api.openai-hk.com MJ_API_KEY=hk-...), "
                "or run `mj-mcp --simulator` to try it without a key, or `mj-mcp demo`"
            )
        return self

    @property
    def readable_dirs(self) -> list[Path]:
        """Folders from which local image files may be read (resolved)."""
        if self.allowed_dirs is not None:
            dirs = list(self.allowed_dirs)
        else:
            dirs: list[Path] = []
            cwd = Path.cwd().resolve()
            if cwd != Path(cwd.anchor) and cwd != Path.home().resolve():
                dirs.append(cwd)
        if self.output_dir is not None:
            dirs.append(self.output_dir)
        return [d.expanduser().resolve() for d in dirs]


ENV_NAMES: Final[dict[str, str]] = {name: f"MJ_{name.upper()}" for name in Settings.model_fields}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment plus `overrides`; raise SettingsError with one readable line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(
            validation_problems(exc, whole="", limit=20, name=lambda field: ENV_NAMES.get(field, field))
        ) from None
