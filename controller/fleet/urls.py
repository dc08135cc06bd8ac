"""Repository URL normalisation: every spelling of one repository gives one comparison key.

GitRepo `spec.repo` values and the URLs in provider payloads both go through `repo_key`, and
GitRepos are then found by key in an index: no regular expression is ever built from a
payload, so a payload URL such as ``https://github.com/.*/.*`` is just a literal key that
names no real repository.

Ignored: the scheme (``https``, ``http``, ``ssh``, ``git``, none), user info, port, query and
fragment, one ``.git`` suffix, empty path segments (trailing or doubled slashes), case, and
percent-encoding (``%20`` and a space agree; ``%2F`` stays distinct from ``/``). The scp form
``user@host:path`` is read the way git reads it. Azure DevOps HTTPS, legacy
``*.visualstudio.com`` and SSH ``v3/`` URLs share one ``azure-devops/<org>/<project>/<repo>`` key.

Not rewritten on purpose: Bitbucket Server's ``/scm/`` HTTP prefix. Its payloads list the HTTP
and the SSH clone link, and both are looked up, so either spelling in a GitRepo matches;
stripping ``scm/`` generically would merge real GitLab groups named ``scm`` with their parent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["repo_key"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SCP_HOST = re.compile(r"[A-Za-z0-9_.~-]+")
# GitHub, GitLab and Bitbucket serve SSH over port 443 on these sub-domains of the web host.
_SSH_SUBDOMAINS = ("ssh.", "altssh.")
_AZURE_HOST = "dev.azure.com"
_AZURE_SSH_HOSTS = frozenset({"ssh.dev.azure.com", "vs-ssh.visualstudio.com"})
_VISUALSTUDIO_SUFFIX = ".visualstudio.com"
_AZURE_SSH_VERSION = "v3"
_AZURE_GIT_SEGMENT = "_git"
_AZURE_DEFAULT_COLLECTION = "defaultcollection"


def repo_key(url: str) -> str | None:
    """The comparison key of a repository URL, or None when it names no host or no path.

    Keys are opaque: compare them, never parse them. Never raises.
    """
    split = _split(url.strip())
    if split is None:
        return None
    raw_host, raw_path = split
    host = raw_host.lower().rstrip(".")
    segments = _segments(raw_path)
    if not host or not segments:
        return None
    azure = _azure_key(host, segments)
    if azure is not None:
        return azure
    return "/".join((_without_ssh_subdomain(host), *segments))


def _split(text: str) -> tuple[str, str] | None:
    """Host (maybe with user info already dropped) and raw path of a URL or scp-style address."""
    if not text:
        return None
    scheme, separator, rest = text.partition("://")
    if separator and _SCHEME.fullmatch(scheme):
        rest = rest.split("#", 1)[0].split("?", 1)[0]
        authority, _, path = rest.partition("/")
        host, path_head = _split_port(authority.rpartition("@")[2])
        return host, f"{path_head}/{path}"
    colon, slash = text.find(":"), text.find("/")
    if colon != -1 and (slash == -1 or colon < slash):
        # git's own rule: no scheme and a ':' before the first '/' is the scp form.
        user_host, path = text[:colon], text[colon + 1:]
        host = user_host.rpartition("@")[2]
        return (host, path) if _SCP_HOST.fullmatch(host) else None
    authority, _, path = text.partition("/")
    return authority.rpartition("@")[2], path


def _split_port(host_port: str) -> tuple[str, str]:
    """Drop a numeric port; a non-numeric one is the start of the path (``ssh://git@host:org/repo``)."""
    if host_port.startswith("["):
        end = host_port.find("]") + 1
        if end == 0:
            return host_port, ""
        host, after = host_port[:end], host_port[end:]
    else:
        host, colon, port = host_port.partition(":")
        after = colon + port
    tail = after[1:]
    return host, "" if tail == "" or tail.isdigit() else tail


def _segments(raw_path: str) -> list[str]:
    segments = [_decode(segment).casefold() for segment in raw_path.split("/") if segment]
    if segments and segments[-1].endswith(".git") and len(segments[-1]) > len(".git"):
        segments[-1] = segments[-1][: -len(".git")]
    return segments


def _decode(segment: str) -> str:
    # An encoded '/' must not become a separator, or "a%2Fb/c" and "a/b/c" would agree.
    return unquote(segment, errors="replace").replace("/", "%2f")


def _without_ssh_subdomain(host: str) -> str:
    for prefix in _SSH_SUBDOMAINS:
        rest = host[len(prefix):]
        if host.startswith(prefix) and "." in rest:
            return rest
    return host


def _azure_key(host: str, segments: list[str]) -> str | None:
    if host in _AZURE_SSH_HOSTS:
        if len(segments) == 4 and segments[0] == _AZURE_SSH_VERSION:
            return _azure(*segments[1:])
        return None
    if host == _AZURE_HOST:
        organisation, rest = segments[0], segments[1:]
    elif host.endswith(_VISUALSTUDIO_SUFFIX):
        organisation, rest = host[: -len(_VISUALSTUDIO_SUFFIX)], segments
        if not organisation or "." in organisation:
            return None
    else:
        return None
    if rest and rest[0] == _AZURE_DEFAULT_COLLECTION:
        rest = rest[1:]
    if len(rest) == 3 and rest[1] == _AZURE_GIT_SEGMENT:
        return _azure(organisation, rest[0], rest[2])
    if len(rest) == 2 and rest[0] == _AZURE_GIT_SEGMENT:
        # A repository named after its project may be addressed without the project.
        return _azure(organisation, rest[1], rest[1])
    return None


def _azure(organisation: str, project: str, repository: str) -> str:
    return f"azure-devops/{organisation}/{project}/{repository}"
