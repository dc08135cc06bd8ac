"""Fleet's domain, pure: GitRepos, repository keys, Go durations, webhook mode, the webhook Secret.

No I/O and no framework here; every other package builds on these values.
"""
