"""Training-side data: transforms, instructions, prompt encoding, datasets and collators."""
