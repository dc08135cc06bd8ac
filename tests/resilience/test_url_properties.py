"""Properties of repository URL normalisation (``controller.fleet.urls.repo_key``)."""

from __future__ import annotations

from hypothesis import example, given, settings, strategies as st

from controller.fleet.urls import repo_key

# Names as hosts and Git providers allow them (no '.', so no ".git" suffix games; see the last tests).
NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20
)
HOST = (
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
        min_size=2,
        max_size=4,
    )
    .map(".".join)
    .filter(
        lambda host: not host.startswith(("ssh.", "altssh."))
        and "visualstudio.com" not in host
        and "azure.com" not in host
    )
)
PATH = st.lists(NAME, min_size=2, max_size=4)

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(st.text(max_size=300))
def test_any_text_gives_a_key_or_none_and_never_raises(text: str) -> None:
    assert repo_key(text) is None or isinstance(repo_key(text), str)


@FAST
@given(HOST, PATH)
def test_a_key_is_its_own_key_for_plain_names(host: str, path: list[str]) -> None:
    key = repo_key(f"https://{host}/{'/'.join(path)}")
    assert key is not None
    assert repo_key(key) == key


@FAST
@given(HOST, PATH, NAME)
def test_every_spelling_of_one_repository_gives_one_key(host: str, path: list[str], user: str) -> None:
    joined = "/".join(path)
    spellings = [
        f"https://{host}/{joined}",
        f"https://{host}/{joined}.git",
        f"http://{host}/{joined}/",
        f"HTTPS://{host.upper()}/{joined.upper()}",
        f"git@{host}:{joined}.git",
        f"ssh://git@{host}/{joined}",
        f"ssh://{user}@{host}:22/{joined}.git",
        f"https://{user}:tok@{host}:443/{joined}?x=1#frag",
        f"https://{host}//{joined}",
        f"git://{host}/{joined}",
        f"{host}/{joined}",
    ]
    keys = {spelling: repo_key(spelling) for spelling in spellings}
    assert len(set(keys.values())) == 1, keys
    assert None not in keys.values()


@FAST
@given(HOST, PATH, PATH)
def test_different_repositories_never_share_a_key(host: str, first: list[str], second: list[str]) -> None:
    if [part.casefold() for part in first] == [part.casefold() for part in second]:
        return
    assert repo_key(f"https://{host}/{'/'.join(first)}") != repo_key(f"https://{host}/{'/'.join(second)}")


@FAST
@given(HOST, PATH, st.sampled_from([".*", "(.*)", "[a-z]+", "\\w+", "|", "$", "^"]))
def test_regex_text_in_a_payload_url_is_literal(host: str, path: list[str], metacharacters: str) -> None:
    """No wildcard leaks: a path holding regex syntax names only itself."""
    wildcard = repo_key(f"https://{host}/{metacharacters}/{path[-1]}")
    assert wildcard != repo_key(f"https://{host}/{'/'.join(path)}")


@FAST
@given(NAME, NAME, NAME)
@example("org", "project", "repo")
def test_azure_devops_spellings_agree(organisation: str, project: str, repository: str) -> None:
    keys = {
        repo_key(url)
        for url in (
            f"https://dev.azure.com/{organisation}/{project}/_git/{repository}",
            f"https://{organisation}@dev.azure.com/{organisation}/{project}/_git/{repository}",
            f"git@ssh.dev.azure.com:v3/{organisation}/{project}/{repository}",
            f"https://{organisation}.visualstudio.com/{project}/_git/{repository}",
            f"https://{organisation}.visualstudio.com/DefaultCollection/{project}/_git/{repository}",
        )
    }
    assert len(keys) == 1 and None not in keys


@FAST
@given(HOST, PATH)
def test_space_and_percent_20_agree(host: str, path: list[str]) -> None:
    spaced = path[:-1] + [path[-1] + " x"]
    assert repo_key(f"https://{host}/{'/'.join(spaced)}") == repo_key(
        f"https://{host}/{'/'.join(spaced).replace(' ', '%20')}"
    )


# Where idempotence does not hold, by design: these document it (keys are opaque, never re-normalised).


def test_a_key_is_not_always_its_own_key_a_second_git_suffix_is_stripped_again() -> None:
    key = repo_key("https://github.com/org/repo.git.git")
    assert key == "github.com/org/repo.git"
    assert repo_key(key) == "github.com/org/repo"


def test_a_key_is_not_always_its_own_key_percent_decoding_runs_again() -> None:
    key = repo_key("https://github.com/org/a%2525b")
    assert key == "github.com/org/a%25b"
    assert repo_key(key) == "github.com/org/a%b"
