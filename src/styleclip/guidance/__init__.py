"""What judges an image: CLIP preprocessing (and, as they land, encoders, prompts and losses)."""
