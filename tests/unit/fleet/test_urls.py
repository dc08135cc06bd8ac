"""Repository URLs: every spelling of one repository gives one key, and nothing else gives it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fleet.urls import repo_key

PAYLOAD = "https://github.com/example/repo"

# Fleet reference section 4.4: does the GitRepo URL match the payload URL https://github.com/example/repo?
FLEET_TABLE = [
    pytest.param("https://github.com/example/repo", True, id="same URL"),
    pytest.param("https://github.com/example/repo.git", True, id=".git suffix"),
    pytest.param("http://github.com/example/repo", True, id="scheme not compared"),
    pytest.param("HTTPS://GitHub.com/Example/Repo", True, id="case-insensitive, path too"),
    pytest.param("git@github.com:example/repo.git", True, id="scp form"),
    pytest.param("ssh://git@github.com/example/repo", True, id="ssh with user"),
    pytest.param("ssh://github.com/example/repo", True, id="ssh without user"),
    pytest.param("ssh://git@github.com:22/example/repo.git", True, id="ssh port"),
    pytest.param("https://github.com:443/example/repo", True, id="https port"),
    pytest.param("git@ssh.github.com:example/repo", True, id="ssh. sub-domain (SSH over 443)"),
    pytest.param("https://user:token@github.com/example/repo", True, id="credentials"),
    # Deliberate differences from Fleet, each a pure gain or a closed hole:
    pytest.param(
        "https://user:p$@github.com/example/repo",
        True,
        id="differs: any user info is dropped (Fleet: no, '$' is not a word character)",
    ),
    pytest.param(
        "https://github.com/v1/example/repo",
        False,
        id="differs: no v<digit>/ swallowing outside Azure SSH (Fleet: yes)",
    ),
    pytest.param(
        "https://proxy.example.com/https://github.com/example/repo",
        False,
        id="differs: the whole URL is compared, not its end (Fleet: yes)",
    ),
    pytest.param("https://github.com/example/repo/", True, id="differs: trailing slash accepted (Fleet: no)"),
    pytest.param("github.com/example/repo", True, id="differs: no scheme accepted (Fleet: no)"),
    pytest.param("git://github.com/example/repo", True, id="differs: git scheme accepted (Fleet: no)"),
    pytest.param("https://github.com/example/repo-with-suffix", False, id="longer name"),
    pytest.param("https://github.com/example/repo.git.git", False, id=".git stripped once only"),
    pytest.param("https://mygithub.com/example/repo", False, id="other host ending the same"),
    pytest.param("https://github.com.evil.org/example/repo", False, id="other host starting the same"),
]


@pytest.mark.parametrize(("spec_repo", "matches"), FLEET_TABLE)
def test_fleets_url_table_against_a_github_payload(spec_repo: str, matches: bool) -> None:
    assert (repo_key(spec_repo) == repo_key(PAYLOAD)) is matches


AZURE_FORMS = [
    pytest.param("https://dev.azure.com/org/proj/_git/repo", id="dev.azure.com"),
    pytest.param("https://org@dev.azure.com/org/proj/_git/repo", id="dev.azure.com with user"),
    pytest.param(
        "https://org.visualstudio.com/proj/_git/repo", id="legacy visualstudio.com (Fleet: never matches)"
    ),
    pytest.param(
        "https://org.visualstudio.com/DefaultCollection/proj/_git/repo", id="legacy DefaultCollection"
    ),
    pytest.param("git@ssh.dev.azure.com:v3/org/proj/repo", id="ssh v3"),
    pytest.param("ssh://git@ssh.dev.azure.com:22/v3/org/proj/repo", id="ssh url v3"),
    pytest.param("org@vs-ssh.visualstudio.com:v3/org/proj/repo", id="legacy ssh v3"),
    pytest.param("HTTPS://DEV.AZURE.COM/Org/Proj/_git/Repo", id="capitals"),
]


@pytest.mark.parametrize("url", AZURE_FORMS)
def test_every_azure_devops_form_gives_one_key(url: str) -> None:
    assert repo_key(url) == "dev.azure.com/org/proj/repo"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            "https://dev.azure.com/fabrikam-fiber-inc/DefaultCollection/_git/Fabrikam-Fiber-Git",
            id="fixture remoteUrl: DefaultCollection in collection position, no project",
        ),
        pytest.param("https://dev.azure.com/fabrikam-fiber-inc/_git/Fabrikam-Fiber-Git", id="no project"),
        pytest.param(
            "https://dev.azure.com/fabrikam-fiber-inc/Fabrikam-Fiber-Git/_git/Fabrikam-Fiber-Git",
            id="project named after the repository",
        ),
        pytest.param(
            "https://fabrikam-fiber-inc.visualstudio.com/DefaultCollection/_git/Fabrikam-Fiber-Git",
            id="legacy host",
        ),
        pytest.param(
            "git@ssh.dev.azure.com:v3/fabrikam-fiber-inc/Fabrikam-Fiber-Git/Fabrikam-Fiber-Git", id="ssh"
        ),
    ],
)
def test_an_azure_repository_without_a_project_segment_is_its_own_project(url: str) -> None:
    assert repo_key(url) == "dev.azure.com/fabrikam-fiber-inc/fabrikam-fiber-git/fabrikam-fiber-git"


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        # Fleet reference 7.1 Azure tests.
        pytest.param(
            "https://dev.azure.com/fleet/git-test/_git/git-test",
            "https://fleet.visualstudio.com/git-test/_git/git-test",
            True,
            id="fleet: legacy payload host",
        ),
        pytest.param(
            "git@ssh.dev.azure.com:v3/fleet/git-test/git-test",
            "https://dev.azure.com/fleet/git-test/_git/git-test",
            True,
            id="fleet: ssh GitRepo",
        ),
        pytest.param(
            "https://dev.azure.com/fleet/git%20test/_git/git%20test",
            "https://dev.azure.com/fleet/git test/_git/git test",
            True,
            id="%20 and a space agree",
        ),
        pytest.param(
            "https://visualstudio.com/fleet/git%20test/_git/git%20test",
            "https://visualstudio.com/fleet/git%20test/_git/git%20test",
            True,
            id="fleet: bare visualstudio.com",
        ),
        pytest.param(
            "https://dev.azure.com/fleet/git-test/git-test",
            "https://dev.azure.com/fleet/git-test/_git/git-test",
            False,
            id="differs: a path without _git is not an Azure clone URL (Fleet: yes)",
        ),
        pytest.param(
            "https://dev.azure.com/org/proj/_git/repo",
            "https://dev.azure.com/org/proj/_git/other",
            False,
            id="azure: other repository",
        ),
        pytest.param(
            "https://dev.azure.com/org/proj/_git/repo",
            "https://dev.azure.com/org2/proj/_git/repo",
            False,
            id="azure: other organisation",
        ),
        # Bitbucket Server: the payload lists both clone links, each looked up.
        pytest.param(
            "https://bitbucket.example.com/scm/example/repo.git",
            "https://bitbucket.example.com/scm/example/repo",
            True,
            id="bitbucket server http without .git",
        ),
        pytest.param(
            "ssh://git@bitbucket.example.com:7999/example/repo.git",
            "ssh://git@bitbucket.example.com:7999/example/repo",
            True,
            id="bitbucket server ssh without .git (Fleet: no)",
        ),
        pytest.param(
            "ssh://git@bitbucket.example.com:7999/example/repo.git",
            "git@bitbucket.example.com:example/repo.git",
            False,
            id="differs: a self-hosted port is kept (the scp form means port 22)",
        ),
        pytest.param(
            "https://bitbucket.example.com/scm/example/repo.git",
            "ssh://git@bitbucket.example.com:7999/example/repo.git",
            False,
            id="bitbucket server /scm/ is kept: http and ssh keys differ, both are looked up",
        ),
        pytest.param(
            "ssh://git@server.bitbucket.local:7999/~gopher/webhook-test.git",
            "ssh://git@server.bitbucket.local:7999/~gopher/webhook-test",
            True,
            id="bitbucket server personal repo",
        ),
        # SSH host different from the web host (Fleet issue #3720).
        pytest.param(
            "git@github-ssh.example.com:example/repo.git",
            "https://github.example.com/example/repo",
            False,
            id="ssh host is not the web host",
        ),
        pytest.param(
            "git@github-ssh.example.com:example/repo.git",
            "ssh://git@github-ssh.example.com/example/repo",
            True,
            id="ssh host matches the payload ssh_url",
        ),
        pytest.param(
            "ssh://git@github.com:example/repo",
            "https://github.com/example/repo",
            True,
            id="ssh url with scp-style colon",
        ),
        pytest.param("https://host/a%2Fb/repo", "https://host/a/b/repo", False, id="%2F is not a separator"),
        pytest.param("https://host/a%2Fb/repo", "https://host/a%2fb/repo", True, id="%2F in either case"),
        pytest.param(
            "https://gitlab.com/group/Sub Group/repo",
            "https://GITLAB.com/group/sub%20group/REPO.GIT",
            True,
            id="space, case and .git together",
        ),
        pytest.param(
            "https://github.com/example/repo?tab=readme#top", PAYLOAD, True, id="query and fragment"
        ),
        pytest.param("https://github.com//example//repo//", PAYLOAD, True, id="doubled slashes"),
        pytest.param(
            "http://localhost:3000/unknwon/webhooks",
            "ssh://unknwon@localhost:2222/unknwon/webhooks.git",
            False,
            id="gogs fixture: web and ssh ports are two keys (the payload carries both)",
        ),
        pytest.param(
            "http://git.example.com:3000/org/repo",
            "http://git.example.com:8080/org/repo",
            False,
            id="two servers on one host are told apart by port",
        ),
        pytest.param("https://git.example.com:443/org/repo", "http://git.example.com/org/repo", True,
                     id="a scheme's default port is no port"),
        pytest.param("ssh://git@ssh.github.com:443/org/repo", "https://github.com/org/repo", True,
                     id="github serves ssh on ssh.github.com:443"),
        pytest.param("ssh://git@altssh.gitlab.com:443/org/repo", "https://gitlab.com/org/repo", True,
                     id="gitlab serves ssh on altssh.gitlab.com:443"),
        pytest.param("git@ssh.example.com:org/repo", "https://example.com/org/repo", False,
                     id="ssh. is stripped only where a SaaS host serves ssh"),
        pytest.param("https://git.example.com/Stra\u00dfe/repo", "https://git.example.com/strasse/repo",
                     False,
                     id="case is ASCII case: no unicode folding"),
        pytest.param("https://dev.azure.com/org/proj/repo", "https://example.com/org/proj/repo", False,
                     id="an azure url of no clone shape names nothing"),
    ],
)
def test_two_urls_name_the_same_repository_only_when_their_keys_agree(
    left: str, right: str, same: bool
) -> None:
    assert (repo_key(left) == repo_key(right)) is same


@pytest.mark.parametrize(
    "payload_url",
    [
        pytest.param("https://.*/example/repo", id="wildcard host"),
        pytest.param("https://github.com/.*/.*", id="wildcard path"),
        pytest.param("https://.*/.*", id="wildcard everything"),
        pytest.param("https://github.com/example/rep.", id="dot as any character"),
        pytest.param("https://github.com/example/[r]epo", id="character class"),
    ],
)
def test_a_wildcard_payload_url_is_a_literal_key_matching_nothing_it_does_not_name(payload_url: str) -> None:
    """Fleet's TestGitHubWildcardURLDoesNotMatchUnintendedRepo: no regex is built from a payload."""
    assert repo_key(payload_url) != repo_key("https://github.com/example/repo")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("https://", id="scheme only"),
        pytest.param("https:///example/repo", id="no host"),
        pytest.param("https://github.com", id="no path"),
        pytest.param("https://github.com/", id="root path"),
        pytest.param("git@github.com:", id="scp without path"),
        pytest.param("file:///srv/git/repo", id="local file"),
        pytest.param("not a url: really", id="colon after a non-host"),
    ],
)
def test_a_url_without_host_or_path_has_no_key(url: str) -> None:
    assert repo_key(url) is None


def test_keys_without_a_port_are_stable_under_repo_key() -> None:
    # Keys are opaque (compare them, never parse them); these happen to read back as themselves.
    for url in [
        "https://github.com/example/repo",
        "git@gitlab.example.com:group/sub/repo.git",
    ]:
        key = repo_key(url)
        assert key is not None and repo_key(key) == key


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_repo_key_never_raises_on_arbitrary_text(text: str) -> None:
    key = repo_key(text)
    assert key is None or isinstance(key, str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_repo_key_ignores_case(text: str) -> None:
    assert repo_key(text.upper()) == repo_key(text.lower()) == repo_key(text)


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOSTS = (
    st.lists(LABEL, min_size=2, max_size=4)
    .map(".".join)
    .filter(
        lambda host: not host.endswith(("azure.com", "visualstudio.com"))
        and not host.startswith(("ssh.", "altssh."))
    )
)
NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
    lambda name: not name.lower().endswith(".git")
)


@settings(max_examples=200, deadline=None)
@given(host=HOSTS, owner=NAMES, repo=NAMES, user=NAMES)
def test_equivalent_spellings_of_one_repository_agree(host: str, owner: str, repo: str, user: str) -> None:
    forms = [
        f"https://{host}/{owner}/{repo}",
        f"https://{host}:443/{owner}/{repo}.git",
        f"{user}@{host}:{owner}/{repo}.git",
        f"ssh://{user}@{host}:22/{owner}/{repo}",
        f"https://{host}/{owner}/{repo}/".upper(),
    ]
    keys = {repo_key(form) for form in forms}
    assert len(keys) == 1 and None not in keys
    (key,) = keys
    assert key is not None and repo_key(key) == key


@settings(max_examples=200, deadline=None)
@given(host=HOSTS, owner=NAMES, repo=NAMES, port=st.integers(min_value=1, max_value=65535))
def test_a_port_other_than_the_default_is_part_of_the_key(host: str, owner: str, repo: str,
                                                          port: int) -> None:
    with_port = repo_key(f"ssh://git@{host}:{port}/{owner}/{repo}")
    assert with_port is not None
    assert (with_port == repo_key(f"https://{host}/{owner}/{repo}")) is (port == 22)
