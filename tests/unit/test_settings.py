"""Reading RICOCHET_* variables into frozen typed settings, and the processes' own rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from control.settings import ControlSettings
from edge.settings import EdgeSettings
from shared.settings import SettingsError, env_name, load_settings


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """A small settings struct with every kind of field the loader must handle."""

    x: str
    port: int = 8400
    debug: bool = False
    limit: int | None = None
    ratio: float = 1.0

    def validate(self) -> list[str]:
        return ["RICOCHET_PORT must be positive"] if self.port < 1 else []


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(Probe, environ)
    return excinfo.value.problems


# -- the generic loader --------------------------------------------------------------------


def test_env_name_is_the_prefixed_upper_case_field_name() -> None:
    # Given a field name / When the variable name is derived / Then it carries the prefix
    assert env_name("redis_url") == "RICOCHET_REDIS_URL"


def test_strings_are_converted_to_the_field_types() -> None:
    # Given every value as the string an environment holds
    environ = {
        "RICOCHET_X": "hello",
        "RICOCHET_PORT": "8080",
        "RICOCHET_DEBUG": "true",
        "RICOCHET_LIMIT": "25",
        "RICOCHET_RATIO": "0.5",
    }

    # When the settings are loaded
    settings = load_settings(Probe, environ)

    # Then each value has its field's type
    assert settings == Probe(x="hello", port=8080, debug=True, limit=25, ratio=0.5)


def test_false_is_read_as_a_boolean_false() -> None:
    # Given a boolean spelled "false"
    # When loaded / Then it is False, not a truthy non-empty string
    assert load_settings(Probe, {"RICOCHET_X": "a", "RICOCHET_DEBUG": "false"}).debug is False


def test_unset_fields_take_their_defaults() -> None:
    # Given only the required variable
    # When the settings are loaded
    settings = load_settings(Probe, {"RICOCHET_X": "a"})

    # Then everything else is the declared default
    assert settings == Probe(x="a", port=8400, debug=False, limit=None, ratio=1.0)


def test_variables_without_the_prefix_are_ignored() -> None:
    # Given the value under its bare name only
    # When loaded / Then the required field is still reported missing
    assert problems_of({"x": "a", "X": "a"}) == ["RICOCHET_X is required"]


def test_a_missing_required_field_names_its_variable() -> None:
    # Given an empty environment / When loaded / Then the problem names RICOCHET_X
    assert problems_of({}) == ["RICOCHET_X is required"]


def test_a_value_of_the_wrong_type_names_its_variable() -> None:
    # Given a port that is not a number
    # When loaded
    problems = problems_of({"RICOCHET_X": "a", "RICOCHET_PORT": "eighty"})

    # Then the one problem starts with the variable's name
    assert len(problems) == 1
    assert problems[0].startswith("RICOCHET_PORT: ")
    assert "int" in problems[0]


def test_a_boolean_that_is_not_a_boolean_names_its_variable() -> None:
    # Given a boolean spelled in a way that is not accepted
    # When loaded
    problems = problems_of({"RICOCHET_X": "a", "RICOCHET_DEBUG": "perhaps"})

    # Then the variable is named
    assert len(problems) == 1
    assert problems[0].startswith("RICOCHET_DEBUG: ")


def test_an_empty_value_counts_as_unset_for_an_optional_field() -> None:
    # Given `RICOCHET_PORT=` as a shell would leave it
    # When loaded / Then the default applies instead of a type error
    assert load_settings(Probe, {"RICOCHET_X": "a", "RICOCHET_PORT": ""}).port == 8400


def test_an_empty_value_counts_as_unset_for_a_required_field() -> None:
    # Given `RICOCHET_X=` / When loaded / Then it is reported as missing, not accepted as ""
    assert problems_of({"RICOCHET_X": ""}) == ["RICOCHET_X is required"]


def test_a_file_variable_supplies_the_value(tmp_path: Path) -> None:
    # Given the value in a mounted secret file, with the trailing newline editors add
    secret = tmp_path / "x"
    secret.write_text("from-a-file\n")

    # When loaded through RICOCHET_X_FILE
    settings = load_settings(Probe, {"RICOCHET_X_FILE": str(secret)})

    # Then the value is the file's content without surrounding white space
    assert settings.x == "from-a-file"


def test_a_file_variable_value_is_converted_like_any_other(tmp_path: Path) -> None:
    # Given a number in a file
    port = tmp_path / "port"
    port.write_text("9090\n")

    # When loaded / Then it is converted to the field's type
    settings = load_settings(Probe, {"RICOCHET_X": "a", "RICOCHET_PORT_FILE": str(port)})
    assert settings.port == 9090


def test_an_empty_file_counts_as_unset(tmp_path: Path) -> None:
    # Given a file holding only white space
    empty = tmp_path / "x"
    empty.write_text("\n")

    # When loaded / Then the required field is reported missing
    assert problems_of({"RICOCHET_X_FILE": str(empty)}) == ["RICOCHET_X is required"]


def test_setting_a_variable_and_its_file_variable_is_an_error(tmp_path: Path) -> None:
    # Given both RICOCHET_X and RICOCHET_X_FILE
    secret = tmp_path / "x"
    secret.write_text("b")

    # When loaded
    problems = problems_of({"RICOCHET_X": "a", "RICOCHET_X_FILE": str(secret)})

    # Then the ambiguity is reported naming both
    assert problems == ["RICOCHET_X and RICOCHET_X_FILE are both set; set only one"]


def test_an_unreadable_file_is_reported_with_its_variable(tmp_path: Path) -> None:
    # Given a file variable pointing at nothing
    missing = tmp_path / "does-not-exist"

    # When loaded
    problems = problems_of({"RICOCHET_X_FILE": str(missing)})

    # Then the problem names the variable and the path
    assert len(problems) == 1
    assert problems[0].startswith("RICOCHET_X_FILE: cannot read ")
    assert str(missing) in problems[0]


def test_a_directory_given_as_a_file_is_reported(tmp_path: Path) -> None:
    # Given a file variable pointing at a directory
    # When loaded
    problems = problems_of({"RICOCHET_X_FILE": str(tmp_path)})

    # Then it is a configuration problem, not a crash
    assert len(problems) == 1
    assert problems[0].startswith("RICOCHET_X_FILE: cannot read ")


def test_problems_found_by_validate_are_reported() -> None:
    # Given values of the right types that the struct's own rules refuse
    # When loaded / Then validate()'s problems are the error
    assert problems_of({"RICOCHET_X": "a", "RICOCHET_PORT": "0"}) == [
        "RICOCHET_PORT must be positive"
    ]


def test_the_error_message_lists_every_problem() -> None:
    # Given an error carrying two problems
    error = SettingsError(["RICOCHET_A is required", "RICOCHET_B: Expected `int`, got `str`"])

    # When it is shown / Then both lines are in it
    assert "RICOCHET_A is required" in str(error)
    assert "RICOCHET_B: Expected `int`, got `str`" in str(error)


def test_without_a_mapping_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the value only in the process environment
    for name in ("RICOCHET_PORT", "RICOCHET_DEBUG", "RICOCHET_LIMIT", "RICOCHET_RATIO"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name + "_FILE", raising=False)
    monkeypatch.delenv("RICOCHET_X_FILE", raising=False)
    monkeypatch.setenv("RICOCHET_X", "from-os-environ")

    # When loaded with no explicit mapping
    settings = load_settings(Probe)

    # Then os.environ was used
    assert settings.x == "from-os-environ"


# -- control plane -------------------------------------------------------------------------

GOOD_SECRET = "s" * 32


def control(**overrides: Any) -> ControlSettings:
    values: dict[str, Any] = {
        "database_url": "postgresql://ricochet:pw@db:5432/ricochet",
        "redis_url": "redis://cache:6379/0",
        "secret_key": GOOD_SECRET,
    }
    values.update(overrides)
    return ControlSettings(**values)


def test_control_settings_with_good_values_have_no_problems() -> None:
    # Given sound control settings / When validated / Then nothing is wrong
    assert control().validate() == []


@pytest.mark.parametrize(
    "url",
    ["postgresql://h/db", "postgres://h/db", "postgresql+psycopg://h/db"],
)
def test_control_accepts_postgres_urls(url: str) -> None:
    # Given a PostgreSQL URL in one of its spellings / When validated / Then it is accepted
    assert control(database_url=url).validate() == []


@pytest.mark.parametrize(
    "url",
    ["mysql://h/db", "sqlite:///x.db", "postgresql+asyncpg://h/db", "h:5432/db", ""],
)
def test_control_refuses_database_urls_that_are_not_postgres(url: str) -> None:
    # Given a database URL of another kind / When validated / Then it is named as the problem
    assert control(database_url=url).validate() == [
        "RICOCHET_DATABASE_URL must be a postgresql:// URL"
    ]


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/0", "unix:///tmp/r.sock"])
def test_control_accepts_redis_urls(url: str) -> None:
    # Given a Redis URL / When validated / Then it is accepted
    assert control(redis_url=url).validate() == []


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "memcached://h"])
def test_control_refuses_redis_urls_of_another_scheme(url: str) -> None:
    # Given a URL that is not Redis / When validated / Then it is named as the problem
    assert control(redis_url=url).validate() == ["RICOCHET_REDIS_URL must be a redis:// URL"]


def test_control_refuses_a_secret_key_shorter_than_32_characters() -> None:
    # Given a 31-character pepper / When validated / Then it is too short
    assert control(secret_key="s" * 31).validate() == [
        "RICOCHET_SECRET_KEY must be at least 32 characters"
    ]


def test_control_accepts_a_secret_key_of_exactly_32_characters() -> None:
    # Given the shortest acceptable pepper / When validated / Then it passes
    assert control(secret_key="s" * 32).validate() == []


def test_control_refuses_a_short_url_scheme_other_than_http_or_https() -> None:
    # Given short links announced over ftp / When validated / Then it is refused
    assert control(short_url_scheme="ftp").validate() == [
        "RICOCHET_SHORT_URL_SCHEME must be http or https"
    ]


@pytest.mark.parametrize("shards", [0, -1, 257])
def test_control_refuses_click_shards_out_of_bounds(shards: int) -> None:
    # Given a shard count outside 1..256 / When validated / Then it is refused
    assert control(click_shards=shards).validate() == [
        "RICOCHET_CLICK_SHARDS must be between 1 and 256"
    ]


@pytest.mark.parametrize("shards", [1, 256])
def test_control_accepts_click_shards_at_the_bounds(shards: int) -> None:
    # Given the smallest and largest shard counts / When validated / Then they pass
    assert control(click_shards=shards).validate() == []


def test_control_reports_every_rule_it_breaks_at_once() -> None:
    # Given settings that break three rules
    settings = control(redis_url="http://h", secret_key="short", click_shards=0)

    # When validated / Then all three are reported together
    assert settings.validate() == [
        "RICOCHET_REDIS_URL must be a redis:// URL",
        "RICOCHET_SECRET_KEY must be at least 32 characters",
        "RICOCHET_CLICK_SHARDS must be between 1 and 256",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/ricochet",
        "postgres://u:p@db:5432/ricochet",
        "postgresql+psycopg://u:p@db:5432/ricochet",
    ],
)
def test_sqlalchemy_url_uses_the_psycopg_driver(url: str) -> None:
    # Given a database URL in any accepted spelling / When converted / Then it names psycopg
    assert control(database_url=url).sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/ricochet"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/ricochet",
        "postgres://u:p@db:5432/ricochet",
        "postgresql+psycopg://u:p@db:5432/ricochet",
    ],
)
def test_libpq_url_is_a_plain_postgresql_url(url: str) -> None:
    # Given a database URL in any accepted spelling / When converted / Then libpq can use it
    assert control(database_url=url).libpq_url == "postgresql://u:p@db:5432/ricochet"


def test_control_settings_load_from_the_environment_with_a_secret_file(tmp_path: Path) -> None:
    # Given a deployment with the pepper mounted as a file
    pepper = tmp_path / "secret_key"
    pepper.write_text(GOOD_SECRET + "\n")
    environ = {
        "RICOCHET_DATABASE_URL": "postgres://u@db/ricochet",
        "RICOCHET_REDIS_URL": "redis://cache/0",
        "RICOCHET_SECRET_KEY_FILE": str(pepper),
        "RICOCHET_CONTROL_PORT": "9000",
    }

    # When loaded
    settings = load_settings(ControlSettings, environ)

    # Then values come from both places, converted
    assert settings.secret_key == GOOD_SECRET
    assert settings.control_port == 9000
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@db/ricochet"


def test_control_settings_that_break_rules_fail_to_load() -> None:
    # Given a deployment with a wrong Redis URL and a short pepper
    environ = {
        "RICOCHET_DATABASE_URL": "postgres://u@db/ricochet",
        "RICOCHET_REDIS_URL": "http://cache",
        "RICOCHET_SECRET_KEY": "short",
    }

    # When loaded
    with pytest.raises(SettingsError) as excinfo:
        load_settings(ControlSettings, environ)

    # Then start-up fails naming both variables
    assert excinfo.value.problems == [
        "RICOCHET_REDIS_URL must be a redis:// URL",
        "RICOCHET_SECRET_KEY must be at least 32 characters",
    ]


# -- edge ----------------------------------------------------------------------------------


def test_edge_settings_with_good_values_have_no_problems() -> None:
    # Given sound edge settings / When validated / Then nothing is wrong
    assert EdgeSettings(redis_url="redis://cache/0").validate() == []


def test_edge_refuses_a_redis_url_of_another_scheme() -> None:
    # Given an HTTP URL for Redis / When validated / Then it is named as the problem
    assert EdgeSettings(redis_url="http://cache").validate() == [
        "RICOCHET_REDIS_URL must be a redis:// URL"
    ]


@pytest.mark.parametrize("shards", [0, 257])
def test_edge_refuses_click_shards_out_of_bounds(shards: int) -> None:
    # Given a shard count outside 1..256 / When validated / Then it is refused
    assert EdgeSettings(redis_url="redis://c", click_shards=shards).validate() == [
        "RICOCHET_CLICK_SHARDS must be between 1 and 256"
    ]


@pytest.mark.parametrize("shards", [1, 256])
def test_edge_accepts_click_shards_at_the_bounds(shards: int) -> None:
    # Given the smallest and largest shard counts / When validated / Then they pass
    assert EdgeSettings(redis_url="redis://c", click_shards=shards).validate() == []


def test_edge_refuses_a_cache_without_room() -> None:
    # Given a cache of size 0 / When validated / Then it is refused
    assert EdgeSettings(redis_url="redis://c", cache_size=0).validate() == [
        "RICOCHET_CACHE_SIZE must be positive"
    ]


def test_edge_settings_load_flags_and_numbers_from_strings() -> None:
    # Given an edge deployment's environment
    environ = {
        "RICOCHET_REDIS_URL": "redis://cache/0",
        "RICOCHET_DEFAULT_DOMAIN_ALIASES": "127.0.0.1, LocalHost.",
        "RICOCHET_CAPTURE": "false",
        "RICOCHET_EDGE_PORT": "8080",
        "RICOCHET_CACHE_TTL_S": "12.5",
    }

    # When loaded
    settings = load_settings(EdgeSettings, environ)

    # Then flags and numbers have their types
    assert settings.aliases() == ["127.0.0.1", "localhost"]
    assert settings.capture is False
    assert settings.edge_port == 8080
    assert settings.cache_ttl_s == 12.5


def test_edge_trusted_proxies_load_as_a_cidr_list() -> None:
    # Given proxies named by CIDR, IPv4 and IPv6 / When loaded / Then they are accepted
    settings = load_settings(
        EdgeSettings,
        {"RICOCHET_REDIS_URL": "redis://c", "RICOCHET_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8"},
    )

    assert settings.trusted_proxies == "10.0.0.0/8, fd00::/8"


def test_edge_refuses_a_malformed_trusted_proxy_cidr() -> None:
    # Given a host address with a prefix length (a typo) / When loaded / Then start-up fails
    with pytest.raises(SettingsError) as excinfo:
        load_settings(
            EdgeSettings,
            {"RICOCHET_REDIS_URL": "redis://c", "RICOCHET_TRUSTED_PROXIES": "10.0.0.1/8"},
        )

    [problem] = excinfo.value.problems
    assert problem.startswith("RICOCHET_TRUSTED_PROXIES: ")
    assert "10.0.0.1/8" in problem


def test_edge_refuses_the_retired_proxy_hop_count() -> None:
    # Given a deployment still setting RICOCHET_TRUSTED_PROXY_HOPS / Then it learns the new name
    assert EdgeSettings(redis_url="redis://c", trusted_proxy_hops=1).validate() == [
        "RICOCHET_TRUSTED_PROXY_HOPS is replaced by RICOCHET_TRUSTED_PROXIES"
        " (the CIDRs of your proxies)"
    ]


def test_edge_refuses_a_password_limit_below_one() -> None:
    assert EdgeSettings(redis_url="redis://c", password_attempts=0).validate() == [
        "RICOCHET_PASSWORD_ATTEMPTS must be 1 or more"
    ]


# -- regressions found by reading the loader ---------------------------------------------


def test_every_missing_and_malformed_variable_is_reported_at_once() -> None:
    # Given several problems at once / When loading / Then each one is named
    with pytest.raises(SettingsError) as excinfo:
        load_settings(EdgeSettings, {"RICOCHET_EDGE_PORT": "x", "RICOCHET_CLICK_SHARDS": "y"})
    text = "\n".join(excinfo.value.problems)
    assert "RICOCHET_EDGE_PORT" in text
    assert "RICOCHET_CLICK_SHARDS" in text
    assert "RICOCHET_REDIS_URL is required" in text


def test_all_missing_required_control_variables_are_named() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(ControlSettings, {})
    assert excinfo.value.problems == [
        "RICOCHET_DATABASE_URL is required",
        "RICOCHET_REDIS_URL is required",
        "RICOCHET_SECRET_KEY is required",
    ]


def test_a_file_that_is_not_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe\x00bad")

    problems = problems_of({"RICOCHET_X_FILE": str(secret)})

    assert any("RICOCHET_X_FILE" in p and "UTF-8" in p for p in problems)


def test_an_empty_value_beside_a_file_variable_uses_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "x"
    secret.write_text("from-file\n")

    settings = load_settings(Probe, {"RICOCHET_X": "", "RICOCHET_X_FILE": str(secret)})

    assert settings.x == "from-file"


def test_edge_refuses_the_retired_host_fallback_and_bad_aliases() -> None:
    # Given the retired catch-all fallback and an alias no Host can carry
    environ = {
        "RICOCHET_REDIS_URL": "redis://cache/0",
        "RICOCHET_FALLBACK_TO_DEFAULT_DOMAIN": "true",
        "RICOCHET_DEFAULT_DOMAIN_ALIASES": "127.0.0.1,bad host",
        "RICOCHET_CONTROL_LOOKUPS_PER_S": "0",
    }

    # When the edge loads its settings, then every problem is named at once
    with pytest.raises(SettingsError) as caught:
        load_settings(EdgeSettings, environ)
    text = str(caught.value)
    assert "RICOCHET_DEFAULT_DOMAIN_ALIASES: 'bad host' is not a host name" in text
    assert "RICOCHET_FALLBACK_TO_DEFAULT_DOMAIN is replaced" in text
    assert "RICOCHET_CONTROL_LOOKUPS_PER_S must be positive" in text
