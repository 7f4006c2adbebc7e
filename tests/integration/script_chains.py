"""The scripted test model's chains (models/script/script.json, written by
tests/models/mkscript.c), as the tests that drive it read them: a chain's text
without its closing eos, and the request members that select a chain."""
import json
import os

EOS_TEXTS = ("<|user|>", "<|observation|>", "<|endoftext|>")


class Chains:
    def __init__(self, model_dir):
        self.script = json.load(open(os.path.join(model_dir, "script.json")))
        self.chains = self.script["chains"]

    def __getitem__(self, name):
        return self.chains[name]

    def text(self, name):
        """The chain's text, its closing eos token left out."""
        t = self.chains[name]["text"]
        for e in EOS_TEXTS:
            if t.endswith(e):
                t = t[: -len(e)]
        return t

    def pick(self, name):
        """logit_bias selecting the chain (its entry token over the anchor's default)."""
        return {"logit_bias": {str(self.chains[name]["entry_id"]): 100}}
