"""MTRec's mental reward model: the user-centric MDP, QR-IQL, and the reward read-out.

- `mdp`: the exposure log as a user-centric MDP in flat tensor form.
- `losses`: QR-IQL and the plain chi^2 IQ-Learn ("-IRL") objectives (pure tensor functions).
- `qnetwork`: a recommender backbone plus a non-crossing quantile head.
- `train`: `train_reward` (fit, early stop on validation loss, save).
- `readout`: `read_out_rewards` (rewards for every exposure, summaries, plot data).
- `alignment`: the MTRec alignment loss for guided recommenders.
"""
