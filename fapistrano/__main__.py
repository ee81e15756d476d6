"""``python -m fapistrano`` runs ``fap``."""

from fapistrano.launch import main

main()
