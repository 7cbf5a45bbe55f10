"""Pure ``nn.Module`` networks, no file or network I/O."""
