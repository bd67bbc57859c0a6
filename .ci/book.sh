#!/usr/bin/env bash
# Build the book offline with every chapter executed (a failing cell or any warning fails
# the build), then print the executed asserts per chapter.  Runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
jupyter-book build book -W -n --keep-going --quiet
echo "book: built in $((SECONDS - t0)) s"
python tests/test_book.py
