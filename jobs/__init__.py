"""The worker side: git, agents and GitHub writes, one RQ job per task."""
