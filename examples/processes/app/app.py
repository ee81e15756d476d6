"""The example application: a long-lived process that says which release it runs.

supervisord starts it in ``current`` (see configs/), so its working directory
is the release that was live when it started.
"""

import os
import sys
import time

role = sys.argv[1] if len(sys.argv) > 1 else "web"
print(f"{role} (pid {os.getpid()}) running release {os.path.realpath(os.getcwd())}", flush=True)
while True:
    time.sleep(60)
