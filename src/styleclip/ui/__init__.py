"""The web UI: ``styleclip ui`` or ``styleclip.ui.build_app(G, clip=...)`` (needs ``pip install "styleclip[ui]"``).

Gradio is imported only when the app is built, so ``import styleclip`` never needs it.
"""

from .app import build_app
from .session import EditSession, Limits, OptimizeSettings, Studio

__all__ = ["EditSession", "Limits", "OptimizeSettings", "Studio", "build_app"]
