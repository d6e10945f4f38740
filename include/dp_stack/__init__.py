"""Run the pipeline on one machine with local processes in place of the Compose services."""
