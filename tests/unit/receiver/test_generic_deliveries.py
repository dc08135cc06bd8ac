"""Generic triggers through the receiver: patched with the key, refused without one, on any host."""

from __future__ import annotations

from controller.receiver.pipeline import Delivery
from controller.serving.errors import NotAuthenticated
import pytest

from unit.providers.test_generic import REPO, WHSEC, _body, _signed
from unit.receiver.conftest import MakeReceiver
from unit.receiver.objects import gitrepo, secret


def test_a_generic_push_patches_with_the_key_and_is_refused_without_one(make_receiver: MakeReceiver) -> None:
    receiver, _ = make_receiver([secret(generic=WHSEC), gitrepo(repo=REPO)])
    assert receiver.handle(Delivery(_signed(_body()), _body())).body["summary"]["patched"] == 1
    unsigned_receiver, _ = make_receiver([gitrepo(repo=REPO)])
    with pytest.raises(NotAuthenticated, match="always signed"):
        unsigned_receiver.handle(Delivery(_signed(_body()), _body()))


def test_a_generic_trigger_may_name_a_repository_on_github_com(make_receiver: MakeReceiver) -> None:
    """A CI job or a mirror speaks for the repository it built, wherever that lives."""
    receiver, _ = make_receiver([secret(generic=WHSEC), gitrepo(repo="https://github.com/example/repo")])
    data = _body(repository="https://github.com/example/repo")
    assert receiver.handle(Delivery(_signed(data), data)).body["summary"]["patched"] == 1
