"""mtrec: align recommenders with users' mental reward (MTRec) as an MLOps system."""

__version__ = "0.1.0"
