"""The app's first migration (manage.py reads the names in this directory)."""
