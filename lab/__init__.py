"""Runs, jobs, experiments and the command line of the GAN Augmentation Lab."""
