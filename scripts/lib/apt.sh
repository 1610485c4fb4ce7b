# Installing Debian packages, for every script that needs some (sourced, under `set -euo pipefail`).
# apt_install [--with-recommends] LABEL PACKAGE...: installs whichever of the packages are not
# installed yet (so running a script again only checks), through sudo when not root, waiting for
# another apt's lock instead of failing. Without recommends unless asked (podman needs its own:
# fuse-overlayfs, slirp4netns, uidmap).

apt_install() {
  local recommends=--no-install-recommends
  if [ "$1" = --with-recommends ]; then recommends=--install-recommends; shift; fi
  local label=$1; shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$label: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  # env, not a prefix assignment: sudo's env_reset would drop DEBIAN_FRONTEND, and a debconf
  # question would then wait, unseen, for an answer.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    "$recommends" "${missing[@]}" >/dev/null
}
