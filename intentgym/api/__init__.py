"""intentgym's extension contracts, one module per extension point.

- :mod:`intentgym.api.env`: ``TextEnv`` (a Gymnasium env of chat messages), the env registry;
- :mod:`intentgym.api.phase`: ``Phase`` (one training step of a trainer), ``PhaseContext``;
- :mod:`intentgym.api.probe`: ``Probe`` (an evaluation run after every phase), ``ProbeResult``;
- :mod:`intentgym.api.reward`: the reward-model protocol (TRL's reward-function signature);
- :mod:`intentgym.api.artifacts`: typed artifacts phases hand to later phases;
- :mod:`intentgym.api.requirements`: what a phase or probe needs, checked before any work;
- :mod:`intentgym.api.rewards`: how a run resolves the reward models its phases use.

Plugin folders (``envs``, ``trainers``, ``probes``, ``reward_models``) import these and the rest
of the core (``intentgym.stats``, ``intentgym.data``, ``intentgym.scoring``, ...), never each
other; an import-linter contract in pyproject.toml enforces it. A plugin uses another kind of
plugin through its registry, by name.
"""
