#!/bin/sh
# Stands in for a chat message: appends its argument to notifications.log beside deploy.yml.
echo "$1" >> notifications.log
