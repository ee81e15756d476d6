#!/bin/sh
# Stands in for paging whoever is on call: fap sets FAP_* for local steps.
echo "paged: $FAP_COMMAND of $FAP_APP_NAME to $FAP_STAGE failed (ok=$FAP_OK) on $FAP_HOSTS" >> notifications.log
