"""Comparison rows from the same literature (METHOD.md section 5).

- `denoising`: ADT's T-CE and R-CE (Wang et al., WSDM 2021) as pure tensor
  functions; no satisfaction signal.
- `not_to_recommend`: the not-to-recommend loss (Wang et al., RecSys 2023);
  negative feedback = positives with a low satisfaction signal, so it TRAINS
  ON THE SATISFACTION SIGNAL (allowed for this baseline, as in the paper).
- `pnfrec`: PNFRec (Ivanova, Frolov, Vasilev, RecSys 2025): a SASRec positive
  encoder plus a negative encoder sharing item embeddings; TRAINS ON THE
  SATISFACTION SIGNAL. Inference (and the saved model) is the positive
  SASRec alone, a plain `mtrec.models` recommender.
- `guidance`: registers `ntr`, `pnfrec`, `adt-tce`, `adt-rce` in the training
  loop's guidance registry when imported (imports `mtrec.training`; nothing
  else here does).
- `config`: their typed configs.
"""
