"""The agents: each preset (how a released CLI is run, configured and read), the process
runner (clean environment, own process group, timeouts), the prompts, and `try-agent`.

May import jobs.boundary, jobs.ci and jobs.errors.
"""

from jobs.agents import prompts, runner
from jobs.agents.presets import PRESETS, Preset, write_home
from jobs.agents.runner import check_keys, kill_recorded

__all__ = [
    "PRESETS",
    "Preset",
    "check_keys",
    "kill_recorded",
    "prompts",
    "runner",
    "write_home",
]
