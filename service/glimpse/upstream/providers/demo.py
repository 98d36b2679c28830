"""The built-in demo model (`glimpse/demo/`), the upstream when none is configured: it reads pictures only from
`data:` URLs, so images always go inline, whatever GLIMPSE_IMAGE_DELIVERY says."""

from __future__ import annotations

from ...config import DEMO
from .base import Provider


class Demo(Provider):
    name = DEMO
    otel_name = "glimpse.demo"  # not a registered gen_ai.provider.name value: a custom one, as allowed
    inline_images_only = True
