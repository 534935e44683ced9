#!/usr/bin/env bash
# Installs the npm package node-llama-cpp, with llama.cpp prebuilt for x86-64 Linux CPUs
# (@node-llama-cpp/linux-x64), into the mxkit cache, once: $CACHE/node-llama-cpp-$VERSION.
# CACHE is $MX_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/mxkit. Nothing is compiled and
# nothing is fetched but the two pinned packages and their dependencies from the npm registry
# (install scripts are not run: they would offer to build llama.cpp). Prints the folder.
# Needs Node.js >= 20 and npm; fails with a one-line message when the install fails (offline).
set -euo pipefail

VERSION=3.22.1
cache="${MX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mxkit}"
dest="$cache/node-llama-cpp-$VERSION"

if [ -f "$dest/node_modules/@node-llama-cpp/linux-x64/package.json" ] &&
  [ -f "$dest/node_modules/node-llama-cpp/package.json" ]; then
  echo "$dest"
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm not found" >&2; exit 1; }
[ "$(uname -sm)" = "Linux x86_64" ] ||
  { echo "error: the prebuilt llama.cpp of node-llama-cpp used here is for x86-64 Linux" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.node-llama-cpp.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo '{"private": true}' >"$work/package.json"
if ! (cd "$work" && npm install --ignore-scripts --omit=optional --no-audit --no-fund \
  --no-package-lock --loglevel=error "node-llama-cpp@$VERSION" \
  "@node-llama-cpp/linux-x64@$VERSION" >"$work/npm.log" 2>&1); then
  echo "error: npm install node-llama-cpp@$VERSION failed: $(tail -n 1 "$work/npm.log")" >&2
  exit 1
fi
rm -f "$work/npm.log"
# Appears whole or not at all: a half-installed folder never looks present.
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "$dest"
