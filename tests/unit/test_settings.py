"""Settings come from flags, then GITJOB_WEBHOOK_* variables, then defaults; bad values are named."""

from __future__ import annotations

import pytest

from controller.settings import Listen, Settings, SettingsError, build


@pytest.mark.parametrize(("flags", "environ", "field", "expected"), [
    pytest.param({}, {}, "namespace", "cattle-fleet-system", id="default namespace"),
    pytest.param({}, {}, "webhook_mode", "auto", id="default webhook mode"),
    pytest.param({}, {}, "webhook_polling_interval", "1h", id="default polling interval"),
    pytest.param({}, {}, "max_body_size", 25 * 1024 * 1024, id="default body limit 25MiB"),
    pytest.param({"webhook_mode": "on"}, {}, "webhook_mode", "on", id="flag"),
    pytest.param({}, {"GITJOB_WEBHOOK_WEBHOOK_MODE": "off"}, "webhook_mode", "off", id="environment"),
    pytest.param({"webhook_mode": "on"}, {"GITJOB_WEBHOOK_WEBHOOK_MODE": "off"}, "webhook_mode", "on",
                 id="flag beats environment"),
    pytest.param({"listen": "127.0.0.1:9000"}, {}, "listen", Listen("127.0.0.1", 9000), id="listen"),
    pytest.param({"listen": ":9000"}, {}, "listen", Listen("0.0.0.0", 9000), id="listen without host"),
    pytest.param({"listen": "[::1]:9000"}, {}, "listen", Listen("::1", 9000), id="listen on IPv6"),
    pytest.param({"max_body_size": "512KiB"}, {}, "max_body_size", 512 * 1024, id="size with unit"),
    pytest.param({"max_body_size": "1000"}, {}, "max_body_size", 1000, id="size in bytes"),
    pytest.param({}, {"GITJOB_WEBHOOK_REQUIRE_SIGNATURE": "yes"}, "require_signature", True,
                 id="boolean from environment"),
    pytest.param({"require_signature": "true"}, {}, "require_signature", True, id="boolean flag"),
    pytest.param({"webhook_polling_interval": "1h30m"}, {}, "webhook_polling_interval", "1h30m",
                 id="compound duration"),
    pytest.param({"patch_deadline": "2.5"}, {}, "patch_deadline", 2.5, id="fractional seconds"),
])
def test_an_option_is_read_from_flag_environment_or_default(
    flags: dict[str, str], environ: dict[str, str], field: str, expected: object
) -> None:
    assert getattr(build(flags, environ), field) == expected


@pytest.mark.parametrize(("flags", "environ", "message"), [
    pytest.param({"webhook_mode": "maybe"}, {}, "--webhook-mode: 'maybe' is not valid; expected one of "
                 "auto, on, off", id="unknown mode"),
    pytest.param({}, {"GITJOB_WEBHOOK_WEBHOOK_MODE": "maybe"}, "GITJOB_WEBHOOK_WEBHOOK_MODE: 'maybe'",
                 id="the variable is named when it is the source"),
    pytest.param({"listen": "localhost"}, {}, "--listen: 'localhost' is not valid; expected HOST:PORT",
                 id="listen without port"),
    pytest.param({"listen": "0.0.0.0:70000"}, {}, "port from 0 to 65535", id="port out of range"),
    pytest.param({"workers": "0"}, {}, "--workers: '0' is not valid; expected a whole number of at least 1",
                 id="no workers"),
    pytest.param({"webhook_polling_interval": "1d"}, {}, "a Go duration", id="days are not a Go duration"),
    pytest.param({"webhook_polling_interval": "0s"}, {}, "above zero", id="a zero interval is Fleet's 15 s"),
    pytest.param({"log_format": "xml"}, {}, "one of json, text", id="unknown log format"),
    pytest.param({"max_body_size": "big"}, {}, "--max-body-size", id="size without number"),
    pytest.param({"patch_deadline": "-1"}, {}, "greater than 0", id="negative deadline"),
    pytest.param({"patch_deadline": "nan"}, {}, "greater than 0", id="not a number"),
    pytest.param({"rate_limit": "-5"}, {},
                 "--rate-limit: '-5' is not valid; expected a number of deliveries per second greater than 0",
                 id="a rate is not seconds"),
    pytest.param({"namespace": "Fleet_System"}, {}, "a Kubernetes namespace name", id="bad namespace"),
    pytest.param({}, {"GITJOB_WEBHOOK_REQUIRE_SIGNATURE": "perhaps"}, "true or false", id="bad boolean"),
])
def test_a_bad_value_names_the_option_and_what_it_accepts(
    flags: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        build(flags, environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.namespace = "x"  # type: ignore[misc]
