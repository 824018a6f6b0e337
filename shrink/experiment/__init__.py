"""One trial: pretrain a base once, prune it, fine-tune with early stopping, evaluate, record in MLflow."""
