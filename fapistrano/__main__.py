"""``python -m fapistrano`` runs ``fap``."""

from fapistrano.cli import main

main()
