"""Edit methods: each turns a text prompt into a change of latent or style codes."""

from ..utils.schedules import learning_rate
from .optimize import EditResult, OptimizeConfig, optimize

__all__ = ["EditResult", "OptimizeConfig", "learning_rate", "optimize"]
