"""The `synthetic` data source: an exposure log from the simulator.

`data.source: synthetic` with an optional `data.simulator:` section (a
`SimulatorConfig`; defaults when absent). Negatives are logged (every
exposure is a row) and the satisfaction signal is `true_reward`. The ground
truth goes to `simulator.truth_path` (when set) so evaluation can compare
learned rewards with the real ones; `load_world` reads it back.
"""

from __future__ import annotations

import pandas as pd

from mtrec.config import DataConfig, SimulatorConfig
from mtrec.data.sources import ATTR_LOGGED_NEGATIVES, ATTR_SIGNAL, register_source
from mtrec.simulator.logging_policy import generate_log
from mtrec.simulator.world import save_world


def simulator_config(config: DataConfig) -> SimulatorConfig:
    return config.simulator or SimulatorConfig()


@register_source("synthetic")
def read_synthetic(config: DataConfig) -> pd.DataFrame:
    sim_config = simulator_config(config)
    log = generate_log(sim_config)
    if sim_config.truth_path is not None:
        save_world(log.world, sim_config.truth_path)
    frame = log.frame
    frame.attrs[ATTR_LOGGED_NEGATIVES] = True
    frame.attrs[ATTR_SIGNAL] = "true_reward"
    return frame
