#!/bin/sh
# debian-test.sh - builds the Debian package from the tracked files of this
# tree (dpkg-buildpackage -us -uc -b, in a scratch copy), checks it with
# lintian (no errors), installs it with dpkg -i, runs `pipewright
# --version` and `pipewright validate` on the installed example, checks
# the user, /var/lib/pipewright and that no service was started, then
# purges it and checks that it is gone. A CI step (.ci/run), not part of
# `make check`: it needs root and takes minutes.
#
#   scripts/debian-test.sh [OUT]    OUT keeps the .deb (default: a temp dir)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

PACKAGES_DEB="debhelper dpkg-dev lintian fakeroot adduser"
missing=""
for p in $PACKAGES_DEB; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

echo "== build"
mkdir "$tmp/pipewright"
(cd "$top" && git ls-files -z | xargs -0 tar cf - ) | (cd "$tmp/pipewright" && tar xf -)
(cd "$tmp/pipewright" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) ||
	{ tail -40 "$tmp/build.log"; exit 1; }
deb=$(ls "$tmp"/pipewright_*.deb)
[ -n "$out" ] && cp "$deb" "$out/"

echo "== lintian"
lintian --fail-on error --suppress-tags-from-file /dev/null "$deb" || { echo "lintian found errors"; exit 1; }

echo "== install"
$sudo dpkg -i "$deb"
pipewright --version | grep -q '^pipewright [0-9]'
ex=/usr/share/doc/pipewright/examples/iris
[ -f "$ex/pipewright.yml" ] || { echo "no installed example at $ex (dpkg path-exclude?)"; exit 1; }
pipewright validate --project "$ex" | grep -q ': OK$'
getent passwd pipewright >/dev/null
[ "$(stat -c %U "/var/lib/pipewright")" = pipewright ]
[ -f /lib/systemd/system/pipewright-runner.service ]
[ -f /lib/systemd/system/pipewright-fcgi.socket ]
[ -f /etc/default/pipewright ]
man -w pipewright.yml >/dev/null 2>&1 || [ -f /usr/share/man/man5/pipewright.yml.5.gz ]
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	! systemctl is-active -q pipewright-runner.service
	! systemctl is-enabled -q pipewright-runner.service
fi

echo "== purge"
$sudo dpkg --purge pipewright
! command -v pipewright >/dev/null
[ ! -e /var/lib/pipewright ] && [ ! -e /etc/default/pipewright ]
[ ! -e /usr/share/doc/pipewright ] || { echo "left behind:"; find /usr/share/doc/pipewright; exit 1; }
! getent passwd pipewright >/dev/null
echo "debian-test: ok"
