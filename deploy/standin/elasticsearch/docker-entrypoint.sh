#!/bin/bash
# As the official image's entry point: every environment variable that looks
# like a setting (lower case, dotted: discovery.type, xpack.security.enabled)
# becomes -E<name>=<value>.
set -euo pipefail
opts=()
while IFS= read -r -d '' entry; do
    name="${entry%%=*}"
    if [[ "$name" =~ ^[a-z0-9_]+\.[a-z0-9_]+[a-z0-9_.-]*$ ]]; then
        opts+=("-E${name}=${entry#*=}")
    fi
done < <(env -0)
exec /usr/share/elasticsearch/bin/elasticsearch "${opts[@]}" "$@"
