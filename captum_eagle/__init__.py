"""captum-eagle: Eagle attribution for multimodal LLMs as a Captum plugin."""
