#!/usr/bin/env bash
# Install the offline data sets that unseen's benchmarks use; safe to run again (it skips what is present).
#
#   scripts/install-data.sh [--with-browser] [--with-postgres]
#
# * Debian packages dataset-fashion-mnist and wordnet-base (and chromium with --with-browser, postgresql with
#   --with-postgres: the service tests start their own server from it), through apt-get as root or with sudo;
#   "apt-get update" runs only when an install fails.
# * The R package r-cran-mlbench (UCI Shuttle and Satellite as .rda files), downloaded with
#   "apt-get download" and unpacked with "dpkg -x" into $UNSEEN_DATA_DIR (default ~/.cache/unseen/data);
#   no R is needed, unseen reads the files with pyreadr.
#
# Non-interactive (DEBIAN_FRONTEND=noninteractive, no prompts); exits 0 when everything is present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

with_browser=0
with_postgres=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --with-postgres) with_postgres=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install-data.sh: unknown option '$arg' (expected --with-browser or --with-postgres)" >&2; exit 2 ;;
  esac
done

data_dir="${UNSEEN_DATA_DIR:-$HOME/.cache/unseen/data}"
mlbench_dir="$data_dir/r-cran-mlbench"
mlbench_data="$mlbench_dir/usr/lib/R/site-library/mlbench/data"

say() { printf 'install-data: %s\n' "$*"; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
  say "apt-get/dpkg not found: this script needs Debian or Ubuntu." >&2
  say "Elsewhere, get Fashion-MNIST into /usr/share/datasets/fashion-mnist, WordNet 3.0 into /usr/share/wordnet," >&2
  say "and mlbench's Shuttle.rda and Satellite.rda into $mlbench_data." >&2
  exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
  fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

wanted=(dataset-fashion-mnist wordnet-base)
[ "$with_browser" -eq 1 ] && wanted+=(chromium)
[ "$with_postgres" -eq 1 ] && wanted+=(postgresql)
missing=()
for pkg in "${wanted[@]}"; do
  if installed "$pkg"; then say "$pkg: already installed"; else missing+=("$pkg"); fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ "${#as_root[@]}" -eq 0 ]; then
    say "need root to install ${missing[*]}: run this script as root, or install sudo." >&2
    exit 1
  fi
  say "installing ${missing[*]} with apt-get"
  if ! "${as_root[@]}" apt-get install -y --no-install-recommends -q "${missing[@]}"; then
    say "install failed; running apt-get update and trying again"
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y --no-install-recommends -q "${missing[@]}"
  fi
  say "installed ${missing[*]}"
fi

if [ -f "$mlbench_data/Shuttle.rda" ] && [ -f "$mlbench_data/Satellite.rda" ]; then
  say "r-cran-mlbench: already in $mlbench_dir"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download writes into the current folder; the _apt user must be able to write there too.
  chmod 0777 "$tmp"
  say "downloading r-cran-mlbench"
  if ! (cd "$tmp" && apt-get download -q r-cran-mlbench); then
    say "download failed; running apt-get update and trying again"
    "${as_root[@]}" apt-get update -q
    (cd "$tmp" && apt-get download -q r-cran-mlbench)
  fi
  mkdir -p "$mlbench_dir"
  dpkg -x "$tmp"/r-cran-mlbench_*.deb "$mlbench_dir"
  if [ ! -f "$mlbench_data/Shuttle.rda" ]; then
    say "r-cran-mlbench was unpacked into $mlbench_dir but holds no Shuttle.rda" >&2
    exit 1
  fi
  say "r-cran-mlbench: unpacked into $mlbench_dir"
fi
say "done"
