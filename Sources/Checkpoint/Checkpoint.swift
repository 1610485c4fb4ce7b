// Checkpoint module.
