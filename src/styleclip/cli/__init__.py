"""The ``styleclip`` command: one module per subcommand, each a thin layer over the library."""
