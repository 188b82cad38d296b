"""``python -m iotscope`` runs the CLI (what tests and scripts use when no venv is on PATH)."""

from iotscope.cli import main

main()
