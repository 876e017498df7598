"""Refit the ``coherence`` judge's calibration and print its held-out metrics.

    python scripts/fit_coherence_judge.py

Writes intentgym/reward_models/data/coherence_judge.v1.json (see reward_models/coherence.py).
"""

import json

from intentgym.reward_models.coherence import fit

if __name__ == "__main__":
    print(json.dumps(fit()["held_out"], indent=2))
