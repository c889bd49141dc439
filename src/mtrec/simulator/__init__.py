"""A user simulator with a ground-truth mental reward.

- `world`: items (topics, quality, clickbait, noise scale) and users (interest,
  susceptibility); `respond` turns shown slates into clicks, rewards, watch
  ratios and departures, and evolves the users' interest.
- `logging_policy`: the logging system and `generate_log` (the exposure log).
- `source`: the `synthetic` data source of the pipeline.
- `policies`, `online`: put any recommender in the loop and compare policies
  paired on the same simulated users (common random numbers).
- `responsiveness`: counterfactual reaction of a policy to a negative action.
- `rl`: a REINFORCE recommender trained with r_env + kappa * r_mental.
"""
