"""What people read: results tables, EIP reports, evaluation with parity plots, per-config-type
errors, t-SNE of representations."""
