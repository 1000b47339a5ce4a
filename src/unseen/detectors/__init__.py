"""Built-in detectors, one module per family. Use :func:`unseen.get_detector` or the classes on ``unseen``."""
