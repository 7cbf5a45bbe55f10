"""Video editing: a clip's frames aligned, inverted, edited alike and stitched back (:func:`edit_video`)."""

from .pipeline import VideoResult, edit_video

__all__ = ["VideoResult", "edit_video"]
