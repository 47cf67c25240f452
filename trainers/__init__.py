"""Training: data preparation (`python -m trainers.prepare`) and the fine-tune trainers
(`python -m trainers.f5`, `python -m trainers.styletts2`)."""
