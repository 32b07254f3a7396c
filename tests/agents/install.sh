#!/usr/bin/env bash
# Installs the agent CLIs the presets are proven with, at the versions they were proven with,
# into DIR (default: $FORGEHAND_AGENTS_DIR, else ~/.cache/forgehand/agents), each in a
# directory of its own; a CLI already there at that version is left as it is. The conformance
# tests (tests/agents) find them there; the image (Containerfile) installs the ones its AGENTS
# build argument names. Nothing is installed globally.
# Usage: install.sh [DIR [NAME...]]   NAME: claude codex gemini opencode aider (default: all)
set -euo pipefail
dir="${1:-${FORGEHAND_AGENTS_DIR:-$HOME/.cache/forgehand/agents}}"
shift || true
wanted=" ${*:-claude codex gemini opencode aider} "
for name in $wanted; do
  case $name in
    claude|codex|gemini|opencode|aider) ;;
    *) echo "install.sh: unknown agent $name (known: claude codex gemini opencode aider)" >&2
       exit 2 ;;
  esac
done
mkdir -p "$dir"

npm_cli() {  # name package version
  local name=$1 package=$2 version=$3
  [[ $wanted == *" $name "* ]] || return 0
  if [ -f "$dir/$name/.version" ] && [ "$(cat "$dir/$name/.version")" = "$version" ]; then
    return
  fi
  rm -rf "$dir/$name"
  echo "installing $package@$version into $dir/$name"
  npm install --silent --no-audit --no-fund --prefix "$dir/$name" "$package@$version" >/dev/null
  echo "$version" > "$dir/$name/.version"
}

npm_cli claude @anthropic-ai/claude-code 2.1.332
npm_cli codex @openai/codex 0.171.0
npm_cli gemini @google/gemini-cli 0.61.0
npm_cli opencode opencode-ai 1.18.33

if [[ $wanted == *" aider "* ]] && { [ ! -f "$dir/aider/.version" ] || [ "$(cat "$dir/aider/.version")" != 0.86.2 ]; }; then
  rm -rf "$dir/aider"
  echo "installing aider-chat==0.86.2 into $dir/aider"
  python3 -m venv "$dir/aider"
  "$dir/aider/bin/python" -m pip install --quiet --disable-pip-version-check aider-chat==0.86.2
  echo 0.86.2 > "$dir/aider/.version"
fi
# OpenCode's grep tool uses ripgrep from PATH, and would otherwise download it at run time.
if [[ $wanted == *" opencode "* ]] && ! command -v rg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ripgrep (apt-get) for opencode's grep tool"
    (apt-get update -qq && apt-get install -y -qq ripgrep) >/dev/null 2>&1 \
      || echo "could not install ripgrep: opencode's grep tool will fail in the sandbox"
  else
    echo "ripgrep is not installed: opencode's grep tool will fail in the sandbox"
  fi
fi
echo "agent CLIs are in $dir"
