"""``python -m booking_events`` runs the command line."""

from booking_events.cli.main import main

main()
