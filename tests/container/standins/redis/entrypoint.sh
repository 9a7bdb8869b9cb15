#!/bin/sh
# As the official image's entrypoint: `redis-server ARGS` runs as the redis
# user with protected mode off (no config file is given).
set -e
if [ "$1" = "redis-server" ]; then
    shift
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
