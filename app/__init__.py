"""forgehand: a GitHub App that puts coding agents to work on a repository's backlog."""
