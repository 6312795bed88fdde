"""vidcolor: colorize black-and-white video with a conditional GAN."""

__version__ = "0.1.0"
