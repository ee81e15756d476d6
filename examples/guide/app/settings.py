"""Settings read from the environment (deploy.yml's ``environment``, which supervisord gives every program)."""

import os


def port() -> int:
    """The web port: $PORT, unless this server says otherwise in shared/port (two web servers on one machine)."""
    override = os.path.join(os.path.realpath("."), "..", "..", "shared", "port")
    if os.path.exists(override):
        with open(override) as text:
            return int(text.read())
    return int(os.environ["PORT"])
