"""A tiny application: prints the greeting its release's .env configures."""

import os

print(os.environ.get("GREETING", "no greeting configured"))
