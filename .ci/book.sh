#!/usr/bin/env bash
# Build the book offline with every chapter executed (a failing cell or any warning fails
# the build), then print the executed asserts per chapter.  Runs from the repository root.
# The chapters' kernels run in the book's IPython profile, book/_ipython, and over
# CurveZMQ-encrypted sockets (both set up by book/_ext/symspec_docs.py); a warning or error
# a kernel logs (such as ipykernel's "Kernel is running over TCP without encryption") fails
# the build too.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
jupyter-book build book -W -n --keep-going --quiet 2>&1 | tee "$log"
echo "book: built in $((SECONDS - t0)) s"
if grep -E '^\[IPKernelApp\] (WARNING|ERROR|CRITICAL)' "$log"; then
  echo "book: a kernel logged the warnings or errors above" >&2
  exit 1
fi
python tests/test_book.py
