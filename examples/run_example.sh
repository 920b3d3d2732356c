#!/bin/sh
# Runs the example program $1 on a new log in the test's scratch directory.
# The example checks its own results and exits non-zero if one is wrong.
set -eu
exec "$1" "$TEST_TMPDIR/example.log"
