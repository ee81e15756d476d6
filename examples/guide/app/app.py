"""The guide's application: one codebase, three kinds of process, and its admin commands.

    gunicorn app:application      the web process (gunicorn.conf.py binds 127.0.0.1:$PORT): / and /up
    python3 app.py up             asks the web process /up (the health check)
    python3 app.py worker         works a queue (here: a heartbeat in log/worker.log)
    python3 app.py cron           runs the scheduled job every CRON_SECONDS
    python3 app.py migrate        applies the schema to the stage's database (shared/db)
    python3 app.py collectstatic  fills static/ in the release"""

import os
import sys
import time
import urllib.request

from settings import port


def application(environ, start_response):
    """The web application: ``/up`` for the health check, ``/`` greets from the release it runs."""
    if environ["PATH_INFO"] == "/up" and os.path.exists("BROKEN"):
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"broken\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = f"{os.environ.get('GREETING', 'no GREETING')} from {os.path.basename(os.getcwd())}\n"
    return [body.encode()]


def main(command: str) -> None:
    if command == "up":
        with urllib.request.urlopen(f"http://127.0.0.1:{port()}/up", timeout=5) as response:
            print(response.read().decode().strip())
    elif command in ("worker", "cron"):
        every = float(os.environ.get("CRON_SECONDS", "60")) if command == "cron" else 5
        while True:
            print(f"{command} {os.environ['APP_STAGE']} {os.path.realpath('.')} {os.environ.get('GREETING')}", flush=True)
            time.sleep(every)
    elif command == "migrate":
        with open("db/migrations", "a") as migrations:
            migrations.write(f"{os.path.basename(os.path.realpath('.'))}\n")
    elif command == "collectstatic":
        os.makedirs("static", exist_ok=True)
        with open("static/app.css", "w") as css:
            css.write("body { font-family: sans-serif }\n")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1])
