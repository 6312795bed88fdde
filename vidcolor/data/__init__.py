"""Data: frames out of videos (extract), shots (scenes), training sets built scene by scene
(dataset_build) and read back (dataset), and the crops a training step takes (crops)."""
