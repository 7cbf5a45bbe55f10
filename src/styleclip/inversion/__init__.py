"""Real photos into the generator: encoders (e4e, ReStyle), optimisation projection, pivotal tuning."""
