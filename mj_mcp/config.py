"""Settings: every `MJ_*` variable, its default and its help text, named once.

cli.py builds its flags (`--poll-interval` for `poll_interval`) from `Settings.model_fields`:
each field's `description` is the flag's help.

`Settings()` reads the environment; the CLI passes flags as keyword arguments, which win over
the environment. `load_settings` turns pydantic's validation errors into one `SettingsError`
line that names the variable and says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mj_mcp.errors import SettingsError, validation_problems
from mj_mcp.images import DEFAULT_MAX_IMAGE_BYTES
from mj_mcp.models import AuthHeader, Mode, ModePrefix
from mj_mcp.replies import secret_forms
from mj_mcp.upstreams import DEFAULT_UPSTREAM, PROFILES, AccountSelection, Profile, Upstream

DEFAULT_POLL_INTERVAL: Final = 2.0
DEFAULT_WAIT_TIMEOUT: Final = 300.0
DEFAULT_HTTP_TIMEOUT: Final = 30.0
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DEFAULT_SIMULATOR_PORT: Final = 8080
DEFAULT_SIM_JOB_SECONDS: Final = 8.0
"""How long a simulated job takes (about like a fast-mode Midjourney job, only shorter)."""
HEARTBEAT_SECONDS: Final = 5.0
"""How often a waiting call sends a progress notification while nothing changes. Clients are
told to expect one at least every 10 s, so that a silent wait reads as alive; half of that
leaves room for a slow poll."""

Transport = Literal["stdio", "streamable-http", "sse"]
ToolFields = Literal["lean", "full"]
"""MJ_TOOL_FIELDS: the fields an agent needs, or every DTO field (account selection and callbacks too)."""


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

    # The order here is the order of the command-line flags in `mj-mcp --help`; each description
    # is the flag's help text (cli.py adds the allowed values and the default).
    transport: Transport = Field(default="stdio", description="how MCP clients connect")
    host: str = Field(default=DEFAULT_HOST, description="HTTP bind address")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="HTTP port")
    simulator: bool = Field(default=False, description="use the built-in simulator")
    sim_job_seconds: float = Field(
        default=DEFAULT_SIM_JOB_SECONDS, gt=0, le=3600, description="how long a simulated job takes"
    )
    base_url: str | None = Field(default=None, description="upstream root URL, e.g. https://api.openai-hk.com")
    api_key: SecretStr | None = Field(
        default=None, description="upstream key (prefer MJ_API_KEY: flags show in process lists)"
    )
    upstream: Upstream = Field(default=DEFAULT_UPSTREAM, description="which upstream software MJ_BASE_URL runs")
    # None until `_profile_defaults` fills in the profile's (so the help names no fixed default).
    auth_header: AuthHeader = Field(default=cast(Any, None), description="how the key is sent; unset, the profile's")
    mode: Literal["", Mode] = Field(default="", description="speed mode; unset, the account's own")
    mode_prefix: ModePrefix = Field(
        default=cast(Any, None), description="how a speed mode reaches the upstream; unset, the profile's"
    )
    account_filter: Annotated[AccountSelection | None, NoDecode] = Field(
        default=None, description='account selection for every job, as JSON, e.g. {"instanceId":"123"}'
    )
    tool_fields: ToolFields = Field(
        default="lean",
        description="lean: tools list the fields an agent needs; full: every DTO field (account selection, "
        "notifyHook, state) as well",
    )
    output_dir: Annotated[Path | None, NoDecode] = Field(
        default_factory=default_output_dir, description="where images are saved; 'off' to disable"
    )
    poll_interval: float = Field(default=DEFAULT_POLL_INTERVAL, gt=0, le=60, description="seconds between status polls")
    wait_timeout: float = Field(
        default=DEFAULT_WAIT_TIMEOUT, gt=0, le=86_400, description="seconds a waiting tool call waits"
    )
    http_timeout: float = Field(
        default=DEFAULT_HTTP_TIMEOUT, gt=0, le=600, description="seconds for one upstream request"
    )
    allowed_dirs: Annotated[list[Path] | None, NoDecode] = Field(
        default=None, description="folders images may be read from (os.pathsep-separated)"
    )
    max_image_bytes: int = Field(
        default=DEFAULT_MAX_IMAGE_BYTES,
        gt=0,
        le=100 * 1024 * 1024,
        description="largest image file or download accepted",
    )
    mcp_token: SecretStr | None = Field(default=None, description="bearer token HTTP clients must send")
    public_url: str | None = Field(default=None, description="address the upstream can call back (notifyHook)")
    read_only: bool = Field(default=False, description="only the read tools")
    preview: Literal["image", "none"] = Field(
        default="image",
        description="image: finished tasks carry a picture the model can see; none: text and structured "
        "content only (for frameworks that turn images into text)",
    )
    max_jobs: int | None = Field(
        default=None, ge=0, description="most jobs this process may start (per client with MJ_CLIENT_KEYS)"
    )
    client_keys: bool = Field(
        default=False, description="HTTP only: each client sends its own upstream key (hosting for many users)"
    )
    stateless: bool = Field(default=False, description="stateless Streamable HTTP")
    redis_url: SecretStr | None = Field(
        default=None,
        description="HTTP only: Redis that several instances share (redis://, rediss:// or unix://)",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated Host names HTTP clients may use"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="what is logged on stderr"
    )

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

    @field_validator("redis_url", mode="after")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            # The URL may carry a password: it is not echoed.
            raise ValueError("must be a Redis URL: redis://host:6379/0, rediss://... (TLS) or unix:///path/redis.sock")
        return SecretStr(url)

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Unset MJ_AUTH_HEADER / MJ_MODE_PREFIX take the MJ_UPSTREAM profile's value."""
        if not isinstance(data, dict):
            return data
        values = cast(dict[str, Any], data)
        name = values.get("upstream", DEFAULT_UPSTREAM)
        # A wrong name is the upstream field's own error; the others then take the default's.
        profile = PROFILES.get(name.strip().casefold() if isinstance(name, str) else "") or PROFILES[DEFAULT_UPSTREAM]
        for field, default in (("auth_header", profile.auth_header), ("mode_prefix", profile.mode_prefix)):
            value = values.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                values[field] = default
        return values

    @field_validator("auth_header", "mode", "log_level", "upstream", "mode_prefix", "tool_fields", mode="before")
    @classmethod
    def _any_case(cls, value: Any, info: ValidationInfo) -> Any:
        """These values match in any letter case: give back the allowed spelling."""
        if not isinstance(value, str) or info.field_name is None:
            return value
        folded = value.strip().casefold()
        allowed = get_args(cls.model_fields[info.field_name].annotation)
        return next((v for v in allowed if isinstance(v, str) and v.casefold() == folded), value.strip())

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

    @field_validator("account_filter", mode="before")
    @classmethod
    def _account_filter(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ValueError('must be a JSON object, e.g. {"instanceId":"123","modes":["FAST"],"remix":false}')
        return cast(dict[str, Any], parsed)

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
    def _account_filter_fits(self) -> Settings:
        if self.account_filter is not None and self.profile.account_filter == "none":
            raise ValueError(
                f"MJ_ACCOUNT_FILTER is set, but {self.profile.title} ({self.profile.setting}) has no account "
                "selection; unset MJ_ACCOUNT_FILTER or set MJ_UPSTREAM to the software you run"
            )
        return self

    @model_validator(mode="after")
    def _client_keys_fit(self) -> Settings:
        if not self.client_keys:
            return self
        if self.transport == "stdio":
            raise ValueError(
                "MJ_CLIENT_KEYS=1 needs an HTTP transport (each client sends its key in an HTTP header); "
                "add --transport streamable-http (or sse), or unset MJ_CLIENT_KEYS"
            )
        if self.api_key is not None:
            raise ValueError(
                "MJ_CLIENT_KEYS=1 and MJ_API_KEY are both set: with client keys every client brings its own "
                "upstream key, so the server must hold none; unset MJ_API_KEY (or MJ_CLIENT_KEYS)"
            )
        return self

    @model_validator(mode="after")
    def _redis_fits(self) -> Settings:
        if self.redis_url is not None and self.transport == "stdio":
            raise ValueError(
                "MJ_REDIS_URL joins HTTP instances behind a load balancer; add --transport streamable-http "
                "(or sse), or unset MJ_REDIS_URL"
            )
        return self

    @model_validator(mode="after")
    def _needs_upstream(self) -> Settings:
        if self.simulator:
            return self
        wanted = (("MJ_BASE_URL", self.base_url),) + (() if self.client_keys else (("MJ_API_KEY", self.api_key),))
        missing = [name for name, v in wanted if not v]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Set "
                f"{' and '.join(missing)} (e.g. MJ_BASE_URL=https://api.openai-hk.com MJ_API_KEY=hk-...), "
                "or run `mj-mcp --simulator` to try it without a key, or `mj-mcp demo`"
            )
        return self

    @property
    def profile(self) -> Profile:
        """The upstream profile MJ_UPSTREAM names."""
        return PROFILES[self.upstream]

    @property
    def readable_dirs(self) -> list[Path]:
        """Folders from which local image files may be read (resolved).

        None with MJ_CLIENT_KEYS: the clients are remote users, and the server's folders (the saved
        images of every tenant among them) are not theirs to read.
        """
        if self.client_keys:
            return []
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

    def key_forms(self) -> tuple[str, ...]:
        """The spellings of the upstream key to mask in everything the upstream sends back."""
        return secret_forms(self.api_key.get_secret_value() if self.api_key else None)


ENV_NAMES: Final[dict[str, str]] = {name: f"MJ_{name.upper()}" for name in Settings.model_fields}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment plus `overrides`; raise SettingsError with one readable line."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(
            validation_problems(exc, whole="", limit=20, name=lambda field: ENV_NAMES.get(field, field))
        ) from None
