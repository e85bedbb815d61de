"""The studio: a local web app over the SDK (``chattune studio``).

Pages and JSON routes read and change the workspace only through :class:`chattune.Client`;
a token (one-time URL → HttpOnly cookie, or ``Authorization: Bearer``) guards every route.

>>> from chattune import Client
>>> from chattune.studio import create_studio_app
>>> app = create_studio_app(Client("ws"), token="s3cret")
"""

from __future__ import annotations

from chattune.studio.app import create_studio_app

__all__ = ["create_studio_app"]
