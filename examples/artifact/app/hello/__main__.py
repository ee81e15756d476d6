"""python -m hello: greet with the settings the host provides."""

import configparser

settings = configparser.ConfigParser()
settings.read("config/settings.ini")
print(f"hello from {settings.get('app', 'name', fallback='nowhere')}")
