#!/usr/bin/env bash
# Say what a job changed in what git tracks: `tree_changes.sh "$(git status --porcelain)"` with the
# status taken before the job. Prints nothing when the tree is as it was; always exits 0 (a changed
# tree is news for the user, not a failure of the job).
set -uo pipefail
before=${1-}
after=$(git status --porcelain 2>/dev/null || true)
[ "$after" = "$before" ] && exit 0
echo
echo "git tree: this run changed what git tracks:"
diff <(echo "$before") <(echo "$after") | sed -n 's/^> /  /p'
echo "  (dvc.lock records the hashes of this run's code and outputs. Outputs are byte-stable on one"
echo "   machine class, but floating-point kernels differ between CPU classes (the committed file is"
echo "   from an AVX-512 CPU), and a code change moves them too. Commit it to pin these outputs,"
echo "   or 'git checkout dvc.lock' to restore the tree.)"
exit 0
