#!/usr/bin/env bash
# check-tracked.sh fails when git tracks (or is about to commit) build
# output: a compiled executable or object (ELF, Mach-O, PE, Go archive),
# or an image under docs/ that no document uses. make check runs it, and
# `make hooks` installs it as the pre-commit hook, so a binary built in
# the tree (cmd/resqued/resqued once was) never gets committed again.
# With --staged it checks the index (what the commit would hold); without,
# every tracked file.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--staged" ]; then
  files=$(git diff --cached --name-only --diff-filter=ACMR)
  show() { (set +o pipefail; git show ":$1" 2>/dev/null | head -c 8 | od -An -tx1 | tr -d ' \n'); }
else
  files=$(git ls-files)
  show() { head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
fi
bad=0
while IFS= read -r f; do
  [ -n "$f" ] || continue
  [ -e "$f" ] || [ "${1:-}" = "--staged" ] || continue
  magic=$(show "$f")
  case "$magic" in
    7f454c46*) what="an ELF executable or object" ;;
    cffaedfe*|cefaedfe*|feedface*|feedfacf*) what="a Mach-O executable" ;;
    4d5a*) what="a Windows executable" ;;
    213c617263683e0a*) what="an ar archive (Go package archive?)" ;;
    *) what="" ;;
  esac
  if [ -n "$what" ]; then
    echo "check-tracked: $f is $what: build output does not belong in git (add it to .gitignore; git rm --cached $f)"
    bad=1
  fi
  case "$f" in
    docs/*.png|docs/*.jpg|docs/*.gif|docs/*.svg)
      name=$(basename "$f")
      if ! git grep -q -F "$name" -- '*.md'; then
        echo "check-tracked: $f is an image no document uses: remove it, or show it in a doc"
        bad=1
      fi ;;
  esac
done <<< "$files"
exit $bad
