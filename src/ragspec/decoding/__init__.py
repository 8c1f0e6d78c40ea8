"""Decoding: sampling transforms, stop conditions, chat prompts and the text stream."""
