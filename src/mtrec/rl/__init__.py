"""RL recommenders guided by the mental reward (the paper's second use, METHOD.md section 3).

- `virtual_taobao`: a Gymnasium adapter over VirtualTaobao (Shi et al., AAAI 2019),
  imported from a path the user gives (it is not vendored here).
- `mental_reward`: the virtual user's MDP on VirtualTaobao, QR-IQL on logged
  trajectories, the expected-next read-out and the `r_env + kappa * r_mental` wrapper.
- `agents`: PPO and SAC from Stable-Baselines3, trained and evaluated on the adapter.
"""
