"""Review output for GitOps: file diffs, plan summaries, the pull-request comment and its JSON twin."""
