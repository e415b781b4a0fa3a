#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet (idempotent: returns
# at once when all are present), with sudo when not root. Used by scripts/setup.sh (what building
# and the main job need) and scripts/test.sh (what only the tests need).
#
#   bash scripts/install-debian-packages.sh LABEL PACKAGE...
set -euo pipefail
label=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "$label: all Debian packages present"
  exit 0
fi
echo "$label: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}"
