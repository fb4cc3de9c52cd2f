#!/bin/sh
# Install the peer tools the export benchmark compares against:
#   darktable-cli   (Debian package darktable, 4.2.x on Debian 12)
#   rawtherapee-cli (Debian package rawtherapee, 5.9 on Debian 12)
#   /usr/bin/time   (GNU time, for wall time and peak RSS)
# Idempotent: installs only what is missing. Needs root (or sudo).
set -eu

need=""
command -v darktable-cli >/dev/null 2>&1 || need="$need darktable"
command -v rawtherapee-cli >/dev/null 2>&1 || need="$need rawtherapee"
# busybox/shell `time` do not report peak RSS; we need GNU time's %M.
if ! /usr/bin/time -f '%M' true >/dev/null 2>&1; then
    need="$need time"
fi

if [ -z "$need" ]; then
    echo "setup_peers: all present"
else
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    echo "setup_peers: installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $need
fi

# Report versions (the first line of each).
darktable-cli --version 2>/dev/null | head -n 1 || true
rawtherapee-cli -v 2>/dev/null | head -n 1 || true
/usr/bin/time --version 2>&1 | head -n 1 || true
