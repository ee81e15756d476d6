# gunicorn reads this from its working directory, the release (directory= in the web conf).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from settings import port  # noqa: E402

bind = f"127.0.0.1:{port()}"
workers = 2
