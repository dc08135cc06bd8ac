"""Every table about providers is derived from the registry, so a new provider is one module."""

from __future__ import annotations

import argparse

import pytest

from controller import providers
from controller.admission.key_names import suggest_key
from controller.cli.parser import build_parser
from controller.providers import PROVIDERS
from controller.providers.base import Provider
from controller.serving.errors import UnknownSender


def test_names_are_unique_sorted_and_found_by_name() -> None:
    assert providers.NAMES == tuple(sorted({provider.name for provider in PROVIDERS}))
    assert len(providers.NAMES) == len(PROVIDERS)
    for provider in PROVIDERS:
        assert providers.by_name(provider.name) is provider
    assert providers.by_name("gerrit") is None


def test_secret_keys_are_every_providers_keys_once() -> None:
    assert set(providers.SECRET_KEYS) == {key for provider in PROVIDERS for key in provider.secret_keys}
    assert len(set(providers.SECRET_KEYS)) == len(providers.SECRET_KEYS)
    for key in providers.SECRET_KEYS:
        assert all(key in provider.secret_keys for provider in providers.providers_of_key(key))
        assert providers.providers_of_key(key)


def test_delivery_id_headers_are_every_providers_headers_lower_cased() -> None:
    assert set(providers.DELIVERY_ID_HEADERS) == {
        name for provider in PROVIDERS for name in provider.delivery_headers}
    assert all(name == name.lower() for name in providers.DELIVERY_ID_HEADERS)


@pytest.mark.parametrize("provider", [pytest.param(p, id=p.name) for p in PROVIDERS])
def test_the_header_a_provider_is_identified_by_identifies_it(provider: Provider) -> None:
    header = provider.identified_by.split()[0].lower()
    # Bitbucket Server shares X-Event-Key with Cloud: its bodies carry `eventKey`, Cloud's never do.
    body = b'{"eventKey": "repo:refs_changed"}'
    detected = providers.detect({header: "push", "content-type": "application/json"}, body)
    assert detected is provider


@pytest.mark.parametrize("provider", [pytest.param(p, id=p.name) for p in PROVIDERS])
def test_the_unknown_sender_answer_names_every_identifying_header(provider: Provider) -> None:
    from controller.receiver.pipeline import Delivery, Receiver
    from controller.settings import Settings
    from controller.store.offline import OfflineStore

    with pytest.raises(UnknownSender) as raised:
        Receiver(Settings(), OfflineStore([])).handle(Delivery({"content-type": "application/json"}, b"{}"))
    assert provider.identified_by in raised.value.message


def test_the_cli_offers_every_provider_to_explain() -> None:
    parser = build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    explain = commands.choices["explain"]
    help_text = next(action.help for action in explain._actions if action.dest == "provider")
    assert help_text == ", ".join(providers.NAMES)


def test_key_aliases_point_at_real_keys() -> None:
    assert set(providers.KEY_ALIASES.values()) <= set(providers.SECRET_KEYS)
    for alias, key in providers.KEY_ALIASES.items():
        assert suggest_key(alias) == f'did you mean "{key}"?'


def test_a_provider_whose_keys_are_not_its_name_is_named_in_the_hint() -> None:
    for provider in PROVIDERS:
        if provider.name not in provider.secret_keys:
            hint = suggest_key(provider.name) or ""
            assert provider.title in hint and all(f'"{key}"' in hint for key in provider.secret_keys)
