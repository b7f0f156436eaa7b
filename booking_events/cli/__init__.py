"""The ``booking-events`` command line: one module per subcommand."""
