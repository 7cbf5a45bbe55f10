"""Model files: from a name or path to a verified local file, and from a file to a network."""
