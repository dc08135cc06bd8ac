"""``status`` options: -n is the GitRepos' namespace as in kubectl, the controller namespace has its
own flag, and --missed-push-grace is a Go duration like every interval."""

from __future__ import annotations

import pytest

from controller.cli.errors import UsageError
from controller.cli.parser import build_parser
from controller.settings import Settings, SettingsError, build


def parse(*argv: str, environ: dict[str, str] | None = None) -> tuple[dict[str, object], Settings]:
    arguments = vars(build_parser().parse_args(["status", *argv]))
    return arguments, build(arguments, environ or {})


def test_dash_n_filters_gitrepos_and_leaves_the_controller_namespace_alone() -> None:
    arguments, settings = parse("-n", "fleet-local")
    assert arguments["gitrepo_namespace"] == "fleet-local"
    assert settings.namespace == "cattle-fleet-system"


def test_the_controller_namespace_comes_from_its_own_flag_or_the_usual_variable() -> None:
    assert parse("--controller-namespace", "fleet-ctl")[1].namespace == "fleet-ctl"
    assert parse(environ={"GITJOB_WEBHOOK_NAMESPACE": "from-env"})[1].namespace == "from-env"


def test_a_bad_controller_namespace_is_reported_under_the_flag_typed() -> None:
    with pytest.raises(UsageError, match="--controller-namespace: 'Not A Namespace' is not valid"):
        parse("--controller-namespace", "Not A Namespace")


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="not allowed with"):
        parse("-n", "a", "-A")


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param((), {}, "2m", id="default"),
        pytest.param(("--missed-push-grace", "90s"), {}, "90s", id="flag"),
        pytest.param((), {"GITJOB_WEBHOOK_MISSED_PUSH_GRACE": "5m"}, "5m", id="environment"),
    ],
)
def test_the_missed_push_grace_is_a_go_duration(argv: tuple[str, ...], environ: dict[str, str],
                                                expected: str) -> None:
    assert parse(*argv, environ=environ)[1].missed_push_grace == expected


def test_a_grace_in_days_is_refused_with_the_reason() -> None:
    with pytest.raises(SettingsError, match="--missed-push-grace: '1d' is not valid.*use hours"):
        parse("--missed-push-grace", "1d")


def test_the_admission_server_takes_the_grace_too() -> None:
    arguments = vars(build_parser().parse_args(["serve", "admission", "--missed-push-grace", "30s"]))
    assert build(arguments, {}).missed_push_grace == "30s"
