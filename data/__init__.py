"""Datasets as in-memory arrays: MedMNIST, image folders, uploaded zips, synthetic sets."""
