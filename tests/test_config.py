"""Settings: every MJ_* variable parses, and every wrong one is one clear line with exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mj_mcp.cli import main
from mj_mcp.config import DEFAULT_WAIT_TIMEOUT, default_output_dir, load_settings
from mj_mcp.errors import SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MJ_"):
            monkeypatch.delenv(name)


def test_settings_read_every_variable_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "MJ_BASE_URL": "https://api.openai-hk.com/",
        "MJ_API_KEY": " hk-secret ",
        "MJ_AUTH_HEADER": "MJ-API-SECRET",
        "MJ_MODE": "Relax",
        "MJ_MODE_PREFIX": "/mj-{mode}",
        "MJ_OUTPUT_DIR": str(tmp_path / "out"),
        "MJ_POLL_INTERVAL": "1.5",
        "MJ_WAIT_TIMEOUT": "90",
        "MJ_ALLOWED_DIRS": f"{tmp_path}/a:{tmp_path}/b",
        "MJ_MCP_TOKEN": "tok",
        "MJ_PUBLIC_URL": "http://example.com:9000",
        "MJ_READ_ONLY": "1",
        "MJ_MAX_JOBS": "3",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert s.base_url == "https://api.openai-hk.com"
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == "hk-secret"
    assert s.auth_header == "mj-api-secret"
    assert s.mode == "relax"
    assert s.mode_prefix == "/mj-{mode}"
    assert s.output_dir == tmp_path / "out"
    assert s.poll_interval == 1.5
    assert s.wait_timeout == 90
    assert s.allowed_dirs == [tmp_path / "a", tmp_path / "b"]
    assert s.mcp_token is not None
    assert s.public_url == "http://example.com:9000"
    assert s.read_only is True
    assert s.max_jobs == 3


def test_defaults_need_no_key_with_the_simulator() -> None:
    s = load_settings(simulator=True)
    assert s.auth_header == "bearer"
    assert s.mode == ""
    assert s.poll_interval <= 5
    assert s.wait_timeout == DEFAULT_WAIT_TIMEOUT
    assert s.output_dir == default_output_dir()
    assert s.transport == "stdio"
    assert s.host == "127.0.0.1"


def test_output_dir_off_disables_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_OUTPUT_DIR", "off")
    assert load_settings(simulator=True).output_dir is None


def test_readable_dirs_default_to_the_working_dir_and_output_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MJ_OUTPUT_DIR", str(tmp_path / "pics"))
    dirs = load_settings(simulator=True).readable_dirs
    assert dirs == [tmp_path.resolve(), (tmp_path / "pics").resolve()]


def test_readable_dirs_leave_out_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path.home())
    monkeypatch.setenv("MJ_OUTPUT_DIR", "off")
    assert load_settings(simulator=True).readable_dirs == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MJ_MODE", "warp", "MJ_MODE: must be one of"),
        ("MJ_POLL_INTERVAL", "abc", "MJ_POLL_INTERVAL"),
        ("MJ_POLL_INTERVAL", "-1", "MJ_POLL_INTERVAL"),
        ("MJ_WAIT_TIMEOUT", "0", "MJ_WAIT_TIMEOUT"),
        ("MJ_AUTH_HEADER", "cookie", "MJ_AUTH_HEADER"),
        ("MJ_MODE_PREFIX", "/x", "MJ_MODE_PREFIX"),
        ("MJ_MAX_JOBS", "many", "MJ_MAX_JOBS"),
        ("MJ_READ_ONLY", "perhaps", "MJ_READ_ONLY"),
        ("MJ_PUBLIC_URL", "ftp://x", "MJ_PUBLIC_URL: must be an http(s) URL"),
    ],
)
def test_a_wrong_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings(simulator=True)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_key_says_which_variables_to_set_and_mentions_the_simulator() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "MJ_BASE_URL and MJ_API_KEY are not set" in text
    assert "--simulator" in text
    assert "mj-mcp demo" in text


def test_a_bad_base_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_BASE_URL", "api.openai-hk.com")
    monkeypatch.setenv("MJ_API_KEY", "k")
    with pytest.raises(SettingsError, match="MJ_BASE_URL: must be an http"):
        load_settings()


def test_the_cli_exits_2_with_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MJ_MODE", "warp")
    assert main(["--simulator"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("mj-mcp: MJ_MODE")
    assert "Traceback" not in captured.err


def test_the_cli_without_key_exits_2_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "MJ_BASE_URL" in err
    assert "--simulator" in err
    assert "mj-mcp demo" in err


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_MODE", "warp")
    assert load_settings(simulator=True, mode="fast").mode == "fast"


def test_the_cli_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    from mj_mcp import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mj-mcp {__version__}"


def test_variable_names_match_in_any_letter_case_and_unknown_ones_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("mj_mode", "relax")
    monkeypatch.setenv("Mj_Simulator", "true")
    monkeypatch.setenv("MJ_NO_SUCH_SETTING", "whatever")
    s = load_settings()
    assert (s.mode, s.simulator) == ("relax", True)


def test_every_setting_but_the_simulators_job_time_is_a_flag_with_its_help() -> None:
    from typing import get_args

    from mj_mcp.cli import build_parser
    from mj_mcp.config import ENV_NAMES, Settings, Transport

    actions = {action.dest: action for action in build_parser()._actions}  # pyright: ignore[reportPrivateUsage]
    assert set(ENV_NAMES) - set(actions) == {"sim_job_seconds"}
    for name, field in Settings.model_fields.items():
        if name != "sim_job_seconds":
            assert actions[name].option_strings == ["--" + name.replace("_", "-")]
            assert field.description
            assert (actions[name].help or "").startswith(field.description)
    assert actions["transport"].choices == get_args(Transport)
    assert actions["simulator"].nargs == 0  # a switch
    assert "default 2.0" in (actions["poll_interval"].help or "")
    assert "bearer | mj-api-secret | authorization" in (actions["auth_header"].help or "")


def test_letter_case_is_folded_to_the_allowed_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_LOG_LEVEL", " debug ")
    monkeypatch.setenv("MJ_AUTH_HEADER", "Authorization")
    s = load_settings(simulator=True, mode=" TURBO")
    assert (s.log_level, s.auth_header, s.mode) == ("DEBUG", "authorization", "turbo")


def test_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MJ_MODE", "fast")
    assert main(["--simulator", "--mode", "warp"]) == 2
    assert capsys.readouterr().err.startswith("mj-mcp: MJ_MODE")


# -- upstream profiles (MJ_UPSTREAM) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "auth_header", "mode_prefix"),
    [
        ("plus", "bearer", "/{mode}"),
        ("new-api", "bearer", "prompt"),
        ("TrueAI", "mj-api-secret", "/mj-{mode}"),
        ("novicezk", "mj-api-secret", "prompt"),
    ],
)
def test_the_upstream_profile_sets_the_auth_header_and_mode_delivery(
    monkeypatch: pytest.MonkeyPatch, upstream: str, auth_header: str, mode_prefix: str
) -> None:
    monkeypatch.setenv("MJ_UPSTREAM", upstream)
    s = load_settings(simulator=True)
    assert (s.upstream, s.auth_header, s.mode_prefix) == (upstream.lower(), auth_header, mode_prefix)
    assert s.profile.name == upstream.lower()


def test_plus_is_the_default_profile() -> None:
    s = load_settings(simulator=True)
    assert (s.upstream, s.auth_header, s.mode_prefix, s.account_filter) == ("plus", "bearer", "/{mode}", None)


def test_auth_header_and_mode_prefix_still_override_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_UPSTREAM", "trueai")
    monkeypatch.setenv("MJ_AUTH_HEADER", "authorization")
    monkeypatch.setenv("MJ_MODE_PREFIX", "PROMPT")
    s = load_settings(simulator=True)
    assert (s.auth_header, s.mode_prefix) == ("authorization", "prompt")
    assert load_settings(simulator=True, auth_header="bearer", upstream="novicezk").auth_header == "bearer"
    monkeypatch.setenv("MJ_AUTH_HEADER", " ")
    assert load_settings(simulator=True).auth_header == "mj-api-secret"


def test_a_wrong_upstream_names_the_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_UPSTREAM", "one-api")
    with pytest.raises(SettingsError) as info:
        load_settings(simulator=True)
    assert str(info.value) == "MJ_UPSTREAM: must be one of 'plus', 'new-api', 'trueai' or 'novicezk'"


def test_the_account_filter_is_a_validated_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_ACCOUNT_FILTER", '{"instanceId":"123","modes":["FAST"],"remix":false}')
    chosen = load_settings(simulator=True).account_filter
    assert chosen is not None
    assert chosen.to_wire() == {"instanceId": "123", "modes": ["FAST"], "remix": False}
    monkeypatch.setenv("MJ_ACCOUNT_FILTER", "")
    assert load_settings(simulator=True).account_filter is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("instanceId=123", "MJ_ACCOUNT_FILTER: must be a JSON object"),
        ('["FAST"]', "MJ_ACCOUNT_FILTER: must be a JSON object"),
        ('{"modes":["QUICK"]}', "MJ_ACCOUNT_FILTER.modes.0"),
        ('{"instance":"1"}', "MJ_ACCOUNT_FILTER.instance"),
        ('{"remix":"maybe"}', "MJ_ACCOUNT_FILTER.remix"),
    ],
)
def test_a_wrong_account_filter_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("MJ_ACCOUNT_FILTER", value)
    with pytest.raises(SettingsError, match=problem.replace(".", r"\.")):
        load_settings(simulator=True)


def test_novicezk_has_no_account_selection_to_apply_a_filter_to() -> None:
    with pytest.raises(SettingsError, match="has no account selection"):
        load_settings(simulator=True, upstream="novicezk", account_filter='{"instanceId":"1"}')


def test_the_new_settings_have_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from mj_mcp.cli import build_parser

    args = build_parser().parse_args(
        ["--upstream", "new-api", "--mode-prefix", "prompt", "--account-filter", '{"instanceId":"7"}']
    )
    assert (args.upstream, args.mode_prefix, args.account_filter) == ("new-api", "prompt", '{"instanceId":"7"}')
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "trueai | novicezk; default plus" in " ".join(shown.split())
    assert "--account-filter" in shown


def test_the_server_s_client_plays_the_profile() -> None:
    from mj_mcp.server.runtime import client_from_settings

    settings = load_settings(
        base_url="https://mj.example", api_key="k", upstream="trueai", account_filter='{"instanceId":"9"}'
    )
    mj = client_from_settings(settings)
    assert (mj.profile.name, mj.auth_header, mj.mode_prefix) == ("trueai", "mj-api-secret", "/mj-{mode}")


# -- mj-mcp simulate --channel -------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["trueai", "novicezk", "plus"])
def test_simulate_channel_passes_the_proxy_behind_new_api_to_the_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], channel: str
) -> None:
    import mj_mcp.simulator

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(mj_mcp.simulator, "run_simulator", lambda host, port, **o: started.append(o))  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    assert main(["simulate", "--port", "0", "--upstream", "new-api", "--channel", channel]) == 0
    assert started == [{"upstream": "new-api", "channel": channel}]
    assert f"new-api in front of a {channel} proxy" in capsys.readouterr().err
    from mj_mcp.simulator import Simulator

    assert Simulator(**started[0]).profile.channel == channel


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--upstream", "trueai", "--channel", "plus"], "--channel goes with --upstream new-api"),
        (["--upstream", "new-api", "--channel", "openai"], "--channel must be one of plus, trueai, novicezk"),
    ],
)
def test_simulate_refuses_a_channel_that_cannot_be(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    import mj_mcp.simulator

    monkeypatch.setattr(mj_mcp.simulator, "run_simulator", lambda *a, **o: pytest.fail("started"))  # pyright: ignore[reportUnknownLambdaType]
    assert main(["simulate", *argv]) == 2
    assert says in capsys.readouterr().err


def test_the_simulator_flag_on_new_api_plays_the_default_channel() -> None:
    from mj_mcp.simulator import Simulator
    from mj_mcp.simulator.profiles import DEFAULT_CHANNEL

    settings = load_settings(simulator=True, upstream="new-api", output_dir="off")
    assert settings.profile.name == "new-api"
    assert Simulator(upstream=settings.upstream).profile.channel == DEFAULT_CHANNEL
