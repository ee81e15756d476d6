"""Stands in for Django's manage.py: collectstatic and migrate, as a deploy runs them."""

import os
import shutil
import sys


def collectstatic() -> None:
    os.makedirs("static", exist_ok=True)
    shutil.copy("assets/site.css", "static/site.css")
    print("1 static file copied to 'static'.")


def migrate() -> None:
    if os.path.exists("BROKEN_MIGRATION"):
        sys.exit("django.db.utils.ProgrammingError: relation \"users\" does not exist")
    with open("db/migrations.log", "a") as log:
        log.write(f"migrated by {os.environ['FAP_HOST']} for {os.environ['FAP_RELEASE']}"
                  f" ({os.environ['DJANGO_SETTINGS_MODULE']})\n")
    print("Applying app.0001_initial... OK")


if __name__ == "__main__":
    {"collectstatic": collectstatic, "migrate": migrate}[sys.argv[1]]()
