"""``python -m segflow_cli`` runs the command line."""

from segflow_cli.app import main

main()
