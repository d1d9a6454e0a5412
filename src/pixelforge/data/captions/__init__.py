"""Captioned images: COCO-captions JSON and captions.csv readers, the tokenizer, the data check, the built-in set."""
