"""Studies that combine frontends, models and analyses (the CNN-zoo compute-vs-bandwidth study)."""
