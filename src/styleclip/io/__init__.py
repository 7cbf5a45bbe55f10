"""Images and files in and out."""
