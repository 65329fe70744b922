"""``python -m segflow`` runs the command line."""

from segflow.cli import main

main()
