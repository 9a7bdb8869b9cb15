"""Executors that deliver run ids to workers, and the training job a worker runs."""
