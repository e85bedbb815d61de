"""``azure.identity`` credentials: accepted so the notebook's login cell runs unchanged; they
carry no meaning here (a chattune workspace is local, its endpoints use their own keys).

>>> DefaultAzureCredential().get_token("https://management.azure.com/.default").token
'local'
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple


class AccessToken(NamedTuple):
    """What ``get_token`` returns (the platform's shape)."""

    token: str
    expires_on: int


class DefaultAzureCredential:
    """Accepted and unused; ``get_token`` always succeeds with a placeholder token."""

    def __init__(self, **kwargs: Any) -> None:
        self.options = kwargs

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local", int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""


class InteractiveBrowserCredential(DefaultAzureCredential):
    """Accepted and unused: no browser opens."""


class AzureCliCredential(DefaultAzureCredential):
    """Accepted and unused."""


class ManagedIdentityCredential(DefaultAzureCredential):
    """Accepted and unused."""
