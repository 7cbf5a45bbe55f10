"""What judges an image: CLIP (preprocessing, image and text embeddings) and the losses of every edit method."""
