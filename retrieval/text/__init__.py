"""Text beside the images: a trained tokenizer, the text-CNN topic classifier, corpora and
baselines."""
