"""Stands in for Django's manage.py: collectstatic and migrate, as a deploy runs them."""

import os
import shutil
import sys


def collectstatic(*_: str) -> None:
    os.makedirs("static", exist_ok=True)
    shutil.copy("assets/site.css", "static/site.css")
    print("1 static file copied to 'static'.")


def migrate(*target: str) -> None:
    """``migrate``: up to this release's newest migration; ``migrate app NAME``: back to NAME (a down-migration)."""
    if os.path.exists("BROKEN_MIGRATION"):
        sys.exit("django.db.utils.ProgrammingError: relation \"users\" does not exist")
    newest = sorted(name[:-3] for name in os.listdir("migrations") if name[:1].isdigit())[-1]
    if target:
        if not os.path.exists(f"migrations/{target[1]}.py"):
            sys.exit(f"CommandError: Cannot find a migration matching '{target[1]}' from app '{target[0]}'.")
        with open("db/migrations.log", "a") as log:
            log.write(f"migrated back to {target[1]} by {os.environ['FAP_HOST']} in {os.path.basename(os.getcwd())}\n")
        print(f"Unapplying app.{newest}... OK")
        return
    with open("db/migrations.log", "a") as log:
        log.write(f"migrated by {os.environ['FAP_HOST']} for {os.environ['FAP_RELEASE']}"
                  f" ({os.environ['DJANGO_SETTINGS_MODULE']})\n")
    print(f"Applying app.{newest}... OK")


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[2:] if not argument.startswith("-")]  # options: --noinput
    {"collectstatic": collectstatic, "migrate": migrate}[sys.argv[1]](*arguments)
