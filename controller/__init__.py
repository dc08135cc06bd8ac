"""gitjob-webhook: the Git push receiver and admission webhooks for Rancher Fleet GitRepos."""

__version__ = "0.1.0"
