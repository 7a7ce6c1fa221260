"""Training: one fold's loop, checkpoints and logs."""
