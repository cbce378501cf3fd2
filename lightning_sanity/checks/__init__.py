"""Pure functions on tensors, one module per check family, unit-tested without a Trainer."""
