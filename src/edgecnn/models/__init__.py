"""Models: the torchvision zoo (:mod:`.zoo`), built-in edge models and checkpoints."""
