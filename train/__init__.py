"""ctrlgen.train: the trainer, losses, stabilization techniques and recipes."""
