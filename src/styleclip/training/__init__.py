"""Training networks that edit: the latent mapper's loop, its optimiser (Ranger) and multi-process helpers."""
