#!/usr/bin/env bash
# Installs the local services' Debian packages when they are missing (about 35 s the first time, instant after).
#   infra/local/install.sh [--help]
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

need=()
command -v radosgw >/dev/null || need+=(ceph-mon ceph-osd radosgw)
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
command -v flock >/dev/null || need+=(util-linux)
((${#need[@]})) || exit 0

sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
exec 9>/tmp/deciserve-apt.lock
flock 9
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
