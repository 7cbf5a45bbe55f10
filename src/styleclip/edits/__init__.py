"""Edit methods: each turns a text prompt into a change of latent or style codes."""

from .optimize import EditResult, OptimizeConfig, learning_rate, optimize

__all__ = ["EditResult", "OptimizeConfig", "learning_rate", "optimize"]
