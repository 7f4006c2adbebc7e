#!/usr/bin/env bash
# Installs the Debian packages named on the command line when any is missing.
# On systems without apt-get, or without root, prints what to install and fails.
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "glm-server: installing missing packages: ${missing[*]}"
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" && exit 0
fi
echo "glm-server: please install the development packages for: jansson, libmicrohttpd, pcre2 (8-bit), check, pkg-config" >&2
echo "            (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
exit 1
