"""Training: the GAN loop (loop), a run's folder (runfolder), its files written in the
background (saver), checkpoints (checkpoint) and what they hold of a run (state), and
fine-tuning's starting point (finetune)."""
