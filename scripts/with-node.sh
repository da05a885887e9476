#!/usr/bin/env bash
# Runs a command with the project's Node.js (scripts/node-runtime.sh) first on PATH, so the
# command, npm and every process they start run on that version.
set -euo pipefail
bin="$(bash "$(dirname "$0")/node-runtime.sh")"
PATH="$bin:$PATH" exec "$@"
