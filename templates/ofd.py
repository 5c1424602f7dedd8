"""OFD renderer (being written)."""

from __future__ import annotations

from templates.fonts import FontSet
from templates.layout import PageLayout


def render_ofd(layout: PageLayout, fonts: FontSet) -> bytes:
    raise NotImplementedError("render_ofd")
