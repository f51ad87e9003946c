#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages Inferno needs to build and test, if any are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libjson-c-dev libpcre2-dev libmicrohttpd-dev clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The server tests drive the real server with Node.js and the official openai npm package.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
