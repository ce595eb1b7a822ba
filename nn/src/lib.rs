//! Modules, optimisers, reparameterisation, checkpoints and data.
