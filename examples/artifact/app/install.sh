#!/bin/sh
# Runs in the new release on every host, after fap unpacked the archive and
# linked config/settings.ini from shared/. A non-zero exit fails the deploy
# (the release is removed and `current` stays where it was).
set -e
test -r config/settings.ini || { echo "config/settings.ini is missing" >&2; exit 1; }
python3 -m compileall -q hello
echo "$FAP_RELEASE installed on $FAP_HOST" > INSTALLED
echo "installed release $FAP_RELEASE"
