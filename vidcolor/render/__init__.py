"""Rendering: the model at a working size (colorizer), the streaming render of videos and
images (streaming), colour carried along the motion (temporal), and colour keys: read
(key_files), picked (key_picker), carried through their shots (keyframes), matched by the
model's features (matching), and tuned on (adapt)."""
