"""The method: datasets and augmentation, networks and generators, losses, learners, model inversion,
the one training loop, metrics. Imports only the foundations."""
